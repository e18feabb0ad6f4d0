"""`gymforge export traj --out DIR`: each stored trajectory as SWE-agent writes it.

    DIR/<task_id>__<attempt>.traj   the trajectory in SWE-agent's .traj shape (trajectory, history, info,
                                    replay_config, environment), JSON: gymforge/swe_traj.py says what
                                    differs from the stored record (replay_config is a RunSingleConfig that
                                    `sweagent run-replay` accepts, a step's state holds strings)
    DIR/manifest.json               counts, skipped trajectories and the filters

Streamed from the store: one trajectory in memory at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from gymforge.app import with_settings
from gymforge.config import Settings
from gymforge.export_sft import (
    Filters,
    Skipped,
    add_filter_args,
    make_out_dir,
    manifest,
    open_store,
    trajectories,
    write_json,
)
from gymforge.mlgym import TaskUnusable, check_name, check_out_dir, export_subparsers
from gymforge.swe_traj import swe_traj

UNSAFE_NAME = "unsafe_name"


def register(sub: argparse._SubParsersAction) -> None:
    p = export_subparsers(sub).add_parser(
        "traj", help="trajectories as SWE-agent .traj files",
        description="Write each trajectory as DIR/<task_id>__<attempt>.traj (SWE-agent's JSON shape).")
    add_filter_args(p, order=False, max_tokens=False)
    p.set_defaults(func=with_settings(cmd_export_traj))


def cmd_export_traj(args: argparse.Namespace, s: Settings) -> int:
    check_out_dir(args.out, force=args.force)
    written, skipped = asyncio.run(export_traj(s, args.out, Filters.from_args(args)))
    more = f"; skipped {sum(skipped.counts.values())} ({skipped.describe()})" if skipped.counts else ""
    print(f"exported {written} trajectory file(s) to {args.out}{more}")
    return 0 if written else 1


def traj_name(task_id: str, attempt: int) -> str:
    name = f"{task_id}__{int(attempt)}.traj"
    check_name(name, "trajectory file name")  # the task id comes from model output: no paths
    return name


async def export_traj(s: Settings, out: Path, f: Filters) -> tuple[int, Skipped]:
    store = await open_store(s, f)
    skipped, written = Skipped(), 0
    try:
        make_out_dir(out)
        async for row, traj in trajectories(store, f, skipped):
            try:
                name = traj_name(row["task_id"], row["attempt"])
            except TaskUnusable:
                skipped.add(row, UNSAFE_NAME)
                continue
            tmp = out / f".{name}.tmp"
            data = swe_traj(traj, name.removesuffix(".traj"), s.sandbox.docker_image)
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            os.replace(tmp, out / name)
            written += 1
        write_json(out / "manifest.json", manifest("traj", f, {"trajectories": written}, skipped))
        return written, skipped
    finally:
        await store.close()
