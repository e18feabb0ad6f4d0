"""Run the real `gymforge` command line as a subprocess against a test server and data dir."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.mirror import mirror_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


async def gymforge(*args: str, url: str, data_dir: Path, timeout: float = 60, env: dict | None = None) -> Result:
    if args and args[0] == "run":  # `run` serves the offline Hub mirror: the session's, built once
        env = await asyncio.to_thread(mirror_env, env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gymforge.cli", *args, cwd=ROOT,
        env={**os.environ, "GYMFORGE_NATS_URL": url, "GYMFORGE_DATA_DIR": str(data_dir), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Result(proc.returncode or 0, out.decode(), err.decode())
