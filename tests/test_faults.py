"""Model endpoint faults: the offline teacher answers 429/500 on 30% of calls and sometimes hangs past the
client's timeout. `gymforge run` still completes: every task ends graded or rejected, every attempt has
its trajectory, nothing is left un-acked or dead-lettered, and the retries show in `status` and the logs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bus import Bus, EmbeddedNats
from teacher.server import Faults, TeacherServer
from tests.helpers.cli import gymforge

pytestmark = pytest.mark.timeout(900)


async def test_a_run_through_a_failing_endpoint_completes_and_loses_nothing(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path) -> None:
    faults = Faults(error_rate=0.3, hang_rate=0.1, hang_s=60, seed=7)
    async with TeacherServer(faults=faults) as teacher:
        env = {"GYMFORGE_TEACHER_PORT": str(teacher.port), "GYMFORGE_LLM_TIMEOUT_S": "2",
               "GYMFORGE_LOG_FORMAT": "json"}
        run = await gymforge("run", "--topics", "2", "--attempts", "1", "--idle-seconds", "6", url=nats_server.url,
                             data_dir=data_dir, env=env, timeout=800)
        counters = teacher.teacher.counters
    assert run.code == 0, run.err[-3000:]
    assert counters.errors > 5 and counters.hangs >= 1, counters

    db = sqlite3.connect(data_dir / "gymforge.db")
    try:
        tasks = dict(db.execute("SELECT task_id, status FROM tasks").fetchall())
        topics = db.execute("SELECT status FROM topics").fetchall()
        per_task = dict(db.execute("SELECT task_id, COUNT(*) FROM trajectories GROUP BY task_id").fetchall())
        retries = db.execute("SELECT SUM(retries) FROM usage").fetchone()[0]
        dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    finally:
        db.close()
    assert len(topics) == 2 and tasks and set(tasks.values()) <= {"graded", "rejected"}, tasks
    assert all(per_task.get(t) == 1 for t, status in tasks.items() if status == "graded"), per_task
    assert retries > 0 and dead == 0

    for durable in ("proposer", "verifier", "coder", "debugger", "solver", "filter", "sink"):
        info = await bus.js.consumer_info("GYMFORGE", durable)
        assert (info.num_pending, info.num_ack_pending) == (0, 0), durable

    logged = [json.loads(line) for line in run.err.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "model call retry" for e in logged)
    status = await gymforge("status", url=nats_server.url, data_dir=data_dir)
    assert status.code == 0 and f"{retries} retried calls" in status.out, status.out
