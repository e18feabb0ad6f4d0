"""A session's disk quota: what task code may keep in the host directories it can write (the workspace,
its private /tmp, writable mounts). RLIMIT_FSIZE makes a single write past the quota fail (EFBIG); this
watch bounds the total. While an exec runs it polls statvfs (cheap) and only when the host filesystem lost
more than the room left walks the directories; past the quota, or when the host is nearly full while the
session grows, it returns the reason and the exec is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INODE_BYTES = 4096  # what every file or directory counts for at least: bounds inode exhaustion too
POLL_S = 0.05
WALK_EVERY_S = 2.0
INLINE_WALK_S = 0.0005  # a walk this quick runs on the event loop (a small workspace); longer ones in a thread
HOST_RESERVE_BYTES = 512 * 1024**2  # a growing session is stopped when its filesystem has less free than this
# Kept between a single file's limit and the quota: a file written up to its RLIMIT_FSIZE must not count as
# over the quota because its st_blocks hold the filesystem's own blocks too (ext4's extent-tree blocks once
# a file is fragmented, as on a disk churned by a long test run) or the exec made an entry beside it. Without
# it, a walk that ran before the exec ended stopped a clean EFBIG as "disk quota exceeded" (seen in 3 of 4
# full suite runs from clean clones, never in isolation).
FSIZE_MARGIN = 64 * 1024


def usage(paths: Sequence[Path]) -> int:
    """Bytes the trees hold on disk (allocated blocks, each entry at least INODE_BYTES), hard links once."""
    total, seen = 0, set()
    stack = [str(p) for p in paths]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += max(st.st_blocks * 512, INODE_BYTES)
    return total


@dataclass(frozen=True)
class Free:
    bytes: int
    inodes: int

    def lost_since(self, before: Free) -> int:
        """What the filesystems lost since `before`, inodes counted as INODE_BYTES each."""
        return (before.bytes - self.bytes) + INODE_BYTES * (before.inodes - self.inodes)


def host_free(paths: Sequence[Path]) -> Free:
    """Free bytes and inodes (for unprivileged users) of the distinct filesystems holding `paths`."""
    free, inodes, seen = 0, 0, set()
    for p in paths:
        with contextlib.suppress(OSError):
            dev = os.stat(p).st_dev
            if dev in seen:
                continue
            seen.add(dev)
            st = os.statvfs(p)
            free += st.f_bavail * st.f_frsize
            inodes += st.f_favail
    return Free(free, inodes)


def verdict(quota: int, reserve: int, before: int, now: int, free: int) -> str | None:
    """Why the exec must stop, or None. A session already over its quota may shrink, never grow."""
    if now > quota and now > before:
        return f"disk quota exceeded: the workspace and /tmp hold {now // 2**20} MiB, the limit is {quota // 2**20} MiB"
    if free < reserve and now > before:
        return f"the host disk is nearly full ({free // 2**20} MiB free): stopped while writing"
    return None


class DiskQuota:
    """One exec's view of the session's quota: `measure()` before it starts (the room left is its file size
    limit), `watch()` while it runs.

    statvfs tells what the whole filesystem lost: other processes freeing space could hide what task code
    writes, so the baseline follows the most free space seen, and the directories are walked every
    WALK_EVERY_S anyway (at most ~2% of the time)."""

    def __init__(self, paths: Sequence[Path], quota: int, reserve: int = HOST_RESERVE_BYTES,
                 poll_s: float = POLL_S) -> None:
        self.paths = list(paths)
        self.quota = quota
        self.reserve = reserve
        self.poll_s = poll_s
        self.used = 0
        self.free = Free(0, 0)
        self.took = 0.0
        self.walked = 0.0

    def _measure(self) -> None:
        start = time.monotonic()
        self.used, self.free = usage(self.paths), host_free(self.paths)
        self.walked = time.monotonic()
        self.took = self.walked - start

    async def measure(self, last_walk_s: float | None = None) -> int:
        """The room left: what one file may grow to in this exec. The walk runs in a thread unless the
        session's last one (`last_walk_s`) was quick enough to run here (a thread costs more than it)."""
        if last_walk_s is not None and last_walk_s < INLINE_WALK_S:
            self._measure()
        else:
            await asyncio.to_thread(self._measure)
        return max(0, self.quota - self.used - FSIZE_MARGIN)

    async def watch(self) -> str:
        """Runs until the session outgrows the quota (returns why) or it is cancelled."""
        while True:
            await asyncio.sleep(self.poll_s)
            free = host_free(self.paths)
            self.free = Free(max(self.free.bytes, free.bytes), max(self.free.inodes, free.inodes))
            since = time.monotonic() - self.walked  # a walk costs: the next one not before 10x its time
            grown = free.lost_since(self.free) > max(0, self.quota - self.used) or free.bytes < self.reserve
            if not (grown and since >= 10 * self.took) and since < max(WALK_EVERY_S, 50 * self.took):
                continue
            before = self.used
            await asyncio.to_thread(self._measure)
            reason = verdict(self.quota, self.reserve, before, self.used, self.free.bytes)
            if reason:
                return reason
