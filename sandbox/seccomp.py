"""The seccomp filter bwrap installs (`--seccomp FD`): a classic BPF program, assembled here, that refuses
the few system calls that get around the other bounds. The sandbox uid maps to the caller (root here), so:

- setting a setuid/setgid bit (chmod, fchmod, fchmodat, creating a file with such a mode, mknod) would
  leave a setuid-root file on the host: EPERM;
- fallocate(FALLOC_FL_KEEP_SIZE) reserves disk blocks past RLIMIT_FSIZE in one call: EOPNOTSUPP (glibc's
  posix_fallocate then writes, within the limit);
- io_uring and openat2 would open files without the mode checks above: ENOSYS (callers fall back);
- system calls of another ABI (i386, x32) would get around the numbers below: ENOSYS.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# classic BPF
_LD_ABS_W = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45  # BPF_JMP | BPF_{JEQ,JGE,JSET} | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def _arg(i: int) -> int:
    return 16 + 8 * i  # the low 32 bits of args[i] (little-endian)


SUID_BITS = 0o6000
CREATE_FLAGS = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE
X32_BIT = 0x40000000


@dataclass(frozen=True)
class Rule:
    nr: int
    errno: int
    mode_arg: int | None = None  # refuse only when this argument has a setuid/setgid bit
    flags_arg: int | None = None  # ... and this one asks to create a file


@dataclass(frozen=True)
class Abi:
    arch: int  # AUDIT_ARCH_*
    rules: tuple[Rule, ...]
    x32: bool = False


def _rules(nrs: dict[str, int]) -> tuple[Rule, ...]:
    eperm, enosys = errno.EPERM, errno.ENOSYS
    table = {  # name -> (errno, mode arg, flags arg)
        "chmod": (eperm, 1, None), "fchmod": (eperm, 1, None), "fchmodat": (eperm, 2, None),
        "fchmodat2": (eperm, 2, None), "mknod": (eperm, 1, None), "mknodat": (eperm, 2, None),
        "creat": (eperm, 1, None), "open": (eperm, 2, 1), "openat": (eperm, 3, 2),
        "fallocate": (errno.EOPNOTSUPP, None, None), "openat2": (enosys, None, None),
        "io_uring_setup": (enosys, None, None),
    }
    return tuple(Rule(nrs[name], e, m, f) for name, (e, m, f) in table.items() if name in nrs)


ABIS = {
    "x86_64": Abi(0xC000003E, _rules({
        "open": 2, "creat": 85, "chmod": 90, "fchmod": 91, "mknod": 133, "openat": 257, "mknodat": 259,
        "fchmodat": 268, "fallocate": 285, "io_uring_setup": 425, "openat2": 437, "fchmodat2": 452}), x32=True),
    "aarch64": Abi(0xC00000B7, _rules({
        "mknodat": 33, "fallocate": 47, "fchmod": 52, "fchmodat": 53, "openat": 56, "io_uring_setup": 425,
        "openat2": 437, "fchmodat2": 452})),
}


class _Asm:
    """Instructions with symbolic jump targets, resolved to BPF's relative offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((code, jt, jf, k))

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (code, jt, jf, k) in enumerate(self.code):
            offsets = [self.labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
            if not all(0 <= o <= 255 for o in offsets):
                raise ValueError(f"jump out of range at {i}")
            out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
        return bytes(out)


def program(abi: Abi) -> bytes:
    a = _Asm()
    a.op(_LD_ABS_W, _ARCH)
    a.op(_JEQ, abi.arch, 0, "enosys")
    a.op(_LD_ABS_W, _NR)
    if abi.x32:
        a.op(_JGE, X32_BIT, "enosys", 0)
    for i, rule in enumerate(abi.rules):
        a.op(_JEQ, rule.nr, f"rule{i}", 0)
    a.op(_RET, RET_ALLOW)
    for i, rule in enumerate(abi.rules):
        a.label(f"rule{i}")
        deny = f"deny{i}"
        if rule.flags_arg is not None:
            a.op(_LD_ABS_W, _arg(rule.flags_arg))
            a.op(_JSET, CREATE_FLAGS, 0, "allow")
        if rule.mode_arg is not None:
            a.op(_LD_ABS_W, _arg(rule.mode_arg))
            a.op(_JSET, SUID_BITS, deny, "allow")
        a.label(deny)
        a.op(_RET, RET_ERRNO | rule.errno)
    a.label("allow")
    a.op(_RET, RET_ALLOW)
    a.label("enosys")
    a.op(_RET, RET_ERRNO | errno.ENOSYS)
    return a.assemble()


def filter_for(machine: str | None = None) -> bytes | None:
    """The program for this machine's ABI, or None where there is no table for it."""
    abi = ABIS.get(machine or platform.machine())
    return program(abi) if abi else None
