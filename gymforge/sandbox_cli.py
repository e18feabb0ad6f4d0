"""`gymforge sandbox …`: run one command in a sandbox, check what a backend contains, build the docker
backend's image, serve podman's Docker API."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import sandbox
from gymforge.errors import UserError
from sandbox.base import ExecResult, Limits
from sandbox.settings import SandboxSettings

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if not m:
        raise UserError(f"cannot read size {text!r}: use a number with an optional K/M/G suffix, e.g. 512M")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _backend(args: argparse.Namespace) -> sandbox.Backend:
    """--backend, else the `sandbox` setting; the process backend only with sandbox_allow_process."""
    s: SandboxSettings = args.settings.sandbox
    try:
        return sandbox.get_backend(args.backend or s.backend, allow_process=s.allow_process, image=s.docker_image,
                                   gpu_lib_dirs=s.gpu_lib_dirs)
    except sandbox.SandboxUnavailable as e:
        raise UserError(str(e)) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except sandbox.SandboxUnavailable as e:
        raise UserError(str(e)) from None


# --- exec ----------------------------------------------------------------------------------------------

def exec_limits(args: argparse.Namespace) -> Limits:
    """The flags' limits; a flag left out takes the sandbox settings' value (sandbox_memory_mb, ...)."""
    limits = args.settings.sandbox.limits(args.timeout)
    chosen = {"memory_bytes": None if args.memory is None else parse_size(args.memory), "cpus": args.cpus,
              "pids": args.pids, "output_bytes": None if args.output is None else parse_size(args.output)}
    return replace(limits, **{k: v for k, v in chosen.items() if v is not None})


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UserError("no command given: gymforge sandbox exec [options] -- CMD ...")
    limits = exec_limits(args)
    backend = _backend(args)
    if args.workspace:
        workspace = Path(args.workspace)
        if not workspace.is_dir():
            raise UserError(f"workspace {workspace} is not a directory: create it or leave --workspace out")
        return _exec_in(backend, workspace, limits, command)
    tmp = Path(tempfile.mkdtemp(prefix="gf-exec-"))
    try:
        return _exec_in(backend, tmp, limits, command)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _exec_in(backend: sandbox.Backend, workspace: Path, limits: Limits, command: list[str]) -> int:
    async def go() -> ExecResult:
        async with await backend.open(workspace, limits) as session:
            return await session.exec(command[0] if len(command) == 1 else command)

    result: ExecResult = _run(go())
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    why = kill_reason(result, limits)
    if why:
        print(f"sandbox: {why}", file=sys.stderr)
    return result.exit_code


def kill_reason(r: ExecResult, limits: Limits) -> str | None:
    if r.timed_out:
        return f"killed: timed out after {limits.wall_time_s:g}s"
    if r.oom_killed:
        return f"killed: out of memory (limit {limits.memory_bytes // 2**20} MiB)"
    if r.disk_exceeded:
        return f"killed: past the disk quota ({limits.disk_bytes // 2**20} MiB)"
    if r.exit_code == 137:
        return "killed by SIGKILL (likely the memory limit)"
    if r.truncated:
        return f"output truncated to {limits.output_bytes} bytes per stream (head and tail kept)"
    return None


# --- check ---------------------------------------------------------------------------------------------

def cmd_check(args: argparse.Namespace) -> int:
    from sandbox.check import run_checks

    runtime = args.settings.sandbox.runtime
    report = _run(run_checks(_backend(args), runtime=runtime, runtime_limits=args.settings.sandbox.limits(120.0)))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(f"sandbox check: backend {report.backend}")
        width = max(len(p.name) for p in report.probes)
        for p in report.probes:
            print(f"  {'contained' if p.contained else 'ESCAPED  '}  {p.name:<{width}}  {p.detail}")
        for limit, how in report.enforcement.items():
            print(f"  enforced   {limit}: {how}")
        print(f"  gpus       {report.gpus.describe()}")
        print(f"  runtime    {runtime_line(report.runtime)}")
        print("all contained" if report.ok else "NOT all contained: do not run untrusted code with this backend")
    return 0 if report.ok else 1


def runtime_line(r: Any) -> str:
    """`torch: numpy 2.3.1, ..., torch 2.13.0+cpu (1 thread)` or what is missing."""
    found = ", ".join(f"{name} {version}" for name, version in r.versions.items())
    if r.missing:
        return f"{r.name}: MISSING {'; '.join(f'{m} ({why})' for m, why in r.missing.items())}; found {found or 'nothing'}"
    threads = f" ({r.threads} thread{'s' if r.threads != '1' else ''})" if r.threads else ""
    return f"{r.name}: {found}{threads}"


# --- build-image / podman-service -----------------------------------------------------------------------

def cmd_build_image(args: argparse.Namespace) -> int:
    from sandbox.docker_backend import connect
    from sandbox.image import build_image, default_ca_bundle, import_rootfs, make_rootfs
    from sandbox.runtimes import get_runtime, image_tag

    try:
        client = connect()
    except sandbox.SandboxUnavailable as e:
        raise UserError(str(e)) from None
    if args.debootstrap:
        with tempfile.TemporaryDirectory(prefix="gf-rootfs-") as tmp:
            print(f"making a Debian rootfs with debootstrap, then importing it as {args.base}", file=sys.stderr)
            make_rootfs(Path(tmp) / "root")
            import_rootfs(client, Path(tmp) / "root", args.base)
    elif args.rootfs:
        import_rootfs(client, Path(args.rootfs), args.base)
    ca = Path(args.ca_bundle) if args.ca_bundle else default_ca_bundle()
    import docker

    runtime = get_runtime(args.runtime or args.settings.sandbox.runtime)
    tag = args.tag or image_tag(runtime)
    try:
        image_id = build_image(client, runtime, tag, args.base, args.packages, ca, pip_args=args.pip_args or "",
                               log=lambda line: print(line, file=sys.stderr))
    except docker.errors.BuildError as e:
        raise UserError(f"image build failed: {e.msg}; is the base {args.base} there? (--rootfs or --debootstrap)") from None
    except docker.errors.APIError as e:
        raise UserError(f"image build failed: {e.explanation or e}") from None
    print(f"built {tag} ({image_id[:19]}) for the {runtime.name} task runtime")
    return 0


def cmd_podman_service(args: argparse.Namespace) -> int:
    from sandbox.podman import start_service

    directory = Path(args.dir or tempfile.mkdtemp(prefix="gf-podman-"))
    try:
        service = start_service(directory)
    except sandbox.SandboxUnavailable as e:
        raise UserError(str(e)) from None
    print(f"export DOCKER_HOST={service.docker_host}  # podman API service; Ctrl-C stops it", flush=True)
    try:
        while service.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sandbox.image import DEFAULT_BASE
    from sandbox.runtimes import RUNTIMES

    p = sub.add_parser("sandbox", help="run code in the sandbox, check it, build its image")
    s = p.add_subparsers(dest="sandbox_command", required=True)
    backends = list(sandbox.BACKENDS)

    e = s.add_parser("exec", help="run one command in a sandbox; exits with its exit code")
    e.add_argument("--backend", choices=backends, help="default: the `sandbox` setting (GYMFORGE_SANDBOX), bwrap")
    e.add_argument("--memory", default=None, help="memory limit, e.g. 512M (default: sandbox_memory_mb, 2G)")
    e.add_argument("--timeout", type=float, default=None,
                   help="wall-time limit in seconds (default: sandbox_command_timeout_s, 60)")
    e.add_argument("--cpus", type=float, default=None, help="default: sandbox_cpus, 1")
    e.add_argument("--pids", type=int, default=None, help="default: sandbox_pids, 256")
    e.add_argument("--output", default=None, help="kept output per stream (head + tail), default: sandbox_output_kb, 64K")
    e.add_argument("--workspace", help="directory mounted read-write as the working dir (default: a temp dir)")
    e.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ... (one word: run by /bin/sh -c)")
    e.set_defaults(func=cmd_exec)

    c = s.add_parser("check", help="try escapes and probe limits; exit 1 unless all are contained")
    c.add_argument("--backend", choices=backends)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)

    b = s.add_parser("build-image", help="build the docker backend's image (sandbox/Dockerfile) with the SDK")
    b.add_argument("--runtime", choices=list(RUNTIMES), help="the task runtime profile (default: task_runtime)")
    b.add_argument("--tag", help="default: the runtime's image, gymforge-sandbox:latest (sklearn) or :torch")
    b.add_argument("--base", default=DEFAULT_BASE, help=f"base image (default {DEFAULT_BASE}, imported locally)")
    b.add_argument("--rootfs", help="import this rootfs directory or tarball as the base first")
    b.add_argument("--debootstrap", action="store_true", help="make the base with debootstrap first (root)")
    b.add_argument("--packages", help="pip requirements (default: the task runtime, pinned to this venv)")
    b.add_argument("--ca-bundle", help="CA bundle pip trusts during the build (default: $PIP_CERT if set)")
    b.add_argument("--pip-args", help="extra pip arguments, e.g. an --index-url serving CPU-only torch wheels")
    b.set_defaults(func=cmd_build_image)

    ps = s.add_parser("podman-service", help="serve podman's Docker API (configured for this machine)")
    ps.add_argument("--dir", help="directory for the socket, config and log (default: a temp dir)")
    ps.set_defaults(func=cmd_podman_service)
