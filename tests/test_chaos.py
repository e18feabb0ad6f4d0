"""The chaos run, small: 3 topics x 2 attempts through separate agent processes (replicas of the roles that
do the work), SIGKILLs every few seconds and one SIGKILL + restart of the nats-server, must end with every
topic terminal, one trajectory per attempt, unique events and drained consumers (bench/chaos.py has the
full run and bench/chaos_checks.py the invariants)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Options, run_chaos

pytestmark = pytest.mark.timeout(900)

REPLICAS = {"sink": 2, "filter": 2, "solver": 2, "debugger": 2, "coder": 1, "verifier": 1, "proposer": 1}


async def test_kills_and_a_nats_restart_lose_and_duplicate_nothing(builtin_catalog: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    o = Options(topics=3, attempts=2, replicas=REPLICAS, kill_every=8.0, seed=1, domains=("tabular data",),
                solver_max_steps=8, defect_rate=0.5, catalog=builtin_catalog, data_dir=tmp_path / "chaos",
                timeout_s=600, progress_s=15)
    report = await run_chaos(o, lines.append)
    assert report.ok, "\n".join([*report.failures, *report.notes, *lines[-5:]])
    c = report.counts
    assert c["topics"] == 3 == c["terminal"]  # one request for 3 topics: exactly 3, kills or not
    assert c["graded"] + c["task_rejected"] + c["dataset_rejected"] == 3 and c["graded"] >= 1
    assert c["trajectories"] == 2 * c["tasks graded"] and c["events"] == c["ledger rows"]
    assert c["kills"] >= 3 and report.restarts == 1 and c["dead letters"] == 0
