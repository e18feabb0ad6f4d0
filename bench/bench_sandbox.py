"""Sandbox overhead: median `exec` of `python -c pass` per backend against a plain subprocess of the same
interpreter in the same run (interleaved, so both see the same machine load), and median session start.
Not a test. Run: .venv/bin/python bench/bench_sandbox.py [--runs 30] [--backends bwrap,process,docker]"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sandbox import Limits, SandboxUnavailable, get_backend
from sandbox.docker_backend import connect
from sandbox.podman import PodmanService, start_service

CMD = ["python", "-c", "pass"]


async def plain(python: str) -> float:
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(python, "-c", "pass", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={"PATH": os.environ["PATH"]})
    await proc.communicate()
    return time.perf_counter() - t


async def bench_backend(name: str, runs: int, starts: int) -> dict[str, float] | str:
    try:
        backend = get_backend(name, allow_process=True)
    except SandboxUnavailable as e:
        return str(e)
    python = str(Path(sys.prefix) / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="gf-bench-") as ws:
        open_times = []
        for _ in range(starts):
            t = time.perf_counter()
            try:
                session = await backend.open(Path(ws), Limits())
            except SandboxUnavailable as e:
                return str(e)
            open_times.append(time.perf_counter() - t)
            await session.close()
        async with await backend.open(Path(ws), Limits()) as session:
            for _ in range(3):  # warm-up: page cache, first-exec costs
                await session.exec(CMD)
                await plain(python)
            sandboxed, baseline = [], []
            for _ in range(runs):
                r = await session.exec(CMD)
                if not r.ok:
                    return f"`python -c pass` failed: {r.stderr.strip()[:120]}"
                sandboxed.append(r.duration_s)
                baseline.append(await plain(python))
    exec_ms, base_ms = statistics.median(sandboxed) * 1e3, statistics.median(baseline) * 1e3
    return {"exec_ms": exec_ms, "plain_ms": base_ms, "ratio": exec_ms / base_ms,
            "start_ms": statistics.median(open_times) * 1e3}


def ensure_engine() -> PodmanService | None:
    """For docker: the engine at DOCKER_HOST, else podman's API service started for the run."""
    try:
        connect()
        return None
    except SandboxUnavailable:
        pass
    service = start_service(Path(tempfile.mkdtemp(prefix="gf-bench-podman-")))
    os.environ["DOCKER_HOST"] = service.docker_host
    return service


def stop_engine(service: PodmanService | None) -> None:
    if service is not None:
        service.stop()
        shutil.rmtree(service.socket.parent, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--backends", default="bwrap,process,docker")
    args = ap.parse_args()
    service = None
    print(f"{'backend':<8} {'exec ms':>8} {'plain ms':>9} {'ratio':>6} {'start ms':>9}   (medians; exec of `python -c pass`)")
    for name in args.backends.split(","):
        if name == "docker":
            try:
                service = ensure_engine()
            except SandboxUnavailable as e:
                print(f"{name:<8} skipped: {e}")
                continue
        result = await bench_backend(name, args.runs, args.starts)
        if isinstance(result, str):
            print(f"{name:<8} skipped: {result}")
            continue
        print(f"{name:<8} {result['exec_ms']:8.1f} {result['plain_ms']:9.1f} {result['ratio']:5.2f}x "
              f"{result['start_ms']:9.1f}")
    stop_engine(service)


if __name__ == "__main__":
    logging.getLogger("sandbox.process").setLevel(logging.ERROR)  # its warning once per session
    asyncio.run(main())
