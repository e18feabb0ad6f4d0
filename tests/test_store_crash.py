"""The store survives its writer's crashes: the sink runs as a real `gymforge agent sink` process, is
SIGKILLed at random moments while it writes thousands of events (of the types that write one or several
tables), and restarted. Afterwards every event is in the ledger once, the entity tables agree with the
ledger (no partial rows), SQLite's integrity check passes and nothing is left un-acked."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bus import Bus, EmbeddedNats, Envelope, make_envelope
from domain.payloads import (
    DatasetVerified,
    TaskDrafted,
    TaskValidated,
    TopicProposed,
    TrajectoryAccepted,
    TrajectoryCompleted,
    Usage,
)
from domain.tasks import DataRef, TaskBundle
from tests.helpers.trajectories import make_trajectory

ROOT = Path(__file__).resolve().parents[1]
STREAM = "GYMFORGE"


# --- the events: one trace = a topic, its dataset, a task drafted and validated, two attempts, usage ----

def trace_events(i: int) -> list[Envelope]:
    topic = make_envelope("topic.proposed", TopicProposed(title=f"topic {i}", domain="crash"), producer="test")
    data = DataRef(key=f"k{i}", splits={"train": f"train-{i}"})
    dataset = make_envelope("dataset.verified", DatasetVerified(
        topic=TopicProposed(title=f"topic {i}"), dataset_id=f"ds-{i}", source="builtin",
        task_type="tabular_classification", features={"x": "float", "y": "int"}, input_columns=["x"],
        label_column="y", split_sizes={"train": 10 + i}, data=data), producer="test", parent=topic)
    bundle = TaskBundle(task_id=f"task-{i}", name=f"Task {i}", task_type="tabular_classification",
                        description="Predict y. " * 20, dataset_name=f"ds-{i}", metric="accuracy",
                        direction="maximize", files={"prepare.py": "print(1)\n" * 30, "evaluate.py": "pass\n"},
                        data=data)
    drafted = make_envelope("task.drafted", TaskDrafted(bundle=bundle, revision=0), producer="test", parent=dataset)
    validated = make_envelope("task.validated", TaskValidated(
        bundle=bundle, revision=0, baseline_score=0.5, baseline_metrics={"accuracy": 0.5}, runtime_s=1.0, rounds=1),
        producer="test", parent=drafted)
    attempts = [make_envelope("trajectory.completed", TrajectoryCompleted(
        task_id=bundle.task_id, attempt=a, attempts_total=2, exit_status="submitted", submitted=True,
        score=0.6 + a / 10, baseline_score=0.5, metric="accuracy", direction="maximize", tokens=100, steps=3,
        trajectory=make_trajectory(bundle.task_id, a, [("Look.", "ls", "x" * 200, None)], score=0.6 + a / 10)),
        producer="test", parent=validated, key=a) for a in range(2)]
    accepted = make_envelope("trajectory.accepted", TrajectoryAccepted(
        task_id=bundle.task_id, attempt=0, trajectory_event_id=attempts[0].id, score=0.6, gain=0.1, tokens=100),
        producer="test", parent=attempts[0])
    usage = make_envelope("usage", Usage(role="solver", model="m", prompt_tokens=10, completion_tokens=5,
                                         cost_usd=0.001), producer="test", parent=topic)
    return [topic, dataset, drafted, validated, *attempts, accepted, usage]


# --- the sink as a process -----------------------------------------------------------------------------

async def start_sink(url: str, data_dir: Path, log: Path, extra_env: dict[str, str] | None = None
                     ) -> asyncio.subprocess.Process:
    env = {**os.environ, "GYMFORGE_NATS_URL": url, "GYMFORGE_DATA_DIR": str(data_dir), "GYMFORGE_ACK_WAIT_S": "2",
           **(extra_env or {})}
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gymforge.cli", "agent", "sink", cwd=ROOT, env=env, stdout=out, stderr=out)
    finally:
        os.close(out)


@asynccontextmanager
async def sinks(url: str, data_dir: Path, extra_env: dict[str, str] | None = None
                ) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The sink processes started in the block (the last one the live one); none outlives it."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()


def count(db: Path, sql: str = "SELECT COUNT(*) FROM ledger") -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        con.close()


async def wait_until(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def settled(bus: Bus) -> bool:
    info = await bus.js.consumer_info(STREAM, "sink")
    return info.num_pending == 0 and info.num_ack_pending == 0


# --- the checks ----------------------------------------------------------------------------------------

def check_store(db: Path, published: list[Envelope]) -> None:
    con = sqlite3.connect(db)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q("PRAGMA integrity_check") == [("ok",)]
        ledger = q("SELECT id, type FROM ledger")
        assert len(ledger) == len(published)  # every event once (id is the key), nothing else (no dead letters)
        assert sorted(ledger) == sorted((e.id, e.type) for e in published)
        by_type: dict[str, set[str]] = {}
        for e in published:
            by_type.setdefault(e.type, set()).add(e.id)
        # every event's rows are there: an event is in the ledger iff its entity rows are (one transaction)
        assert {r[0] for r in q("SELECT id FROM datasets")} == by_type["dataset.verified"]
        assert {r[0] for r in q("SELECT event_id FROM task_revisions")} == by_type["task.drafted"]
        assert {r[0] for r in q("SELECT id FROM usage")} == by_type["usage"]
        assert {r[0] for r in q("SELECT id FROM topics WHERE status = 'dataset_verified' AND domain = 'crash'")
                } == by_type["topic.proposed"]
        n_traces = len(by_type["topic.proposed"])
        assert q("SELECT COUNT(*) FROM tasks WHERE status = 'validated' AND rounds = 1 AND baseline_score = 0.5"
                 ) == [(n_traces,)]
        trajectories = dict(q("SELECT id, status FROM trajectories WHERE task_id IS NOT NULL AND score IS NOT NULL"))
        assert set(trajectories) == by_type["trajectory.completed"]
        accepted = {e.payload["trajectory_event_id"] for e in published if e.type == "trajectory.accepted"}
        assert {i for i, s in trajectories.items() if s == "accepted"} == accepted
    finally:
        con.close()


async def test_sink_killed_mid_batch_loses_nothing_and_writes_nothing_partial(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    db, log = data_dir / "gymforge.db", tmp_path / "sink.log"
    events = [e for i in range(500) for e in trace_events(i)]  # 4000 events, 7 tables
    kills: list[tuple[int, int]] = []  # (ledger rows, messages in flight) at each kill

    async def publish() -> None:
        for start in range(0, len(events), 250):
            await bus.publish_all(events[start:start + 250])
            await asyncio.sleep(rng.uniform(0, 0.2))

    async with sinks(nats_server.url, data_dir) as procs:
        procs.append(await start_sink(nats_server.url, data_dir, log))
        publisher = asyncio.create_task(publish())
        for _ in range(4):
            before = count(db)

            async def writing(before: int = before) -> bool:
                return count(db) > before  # the live sink has committed something since it started

            await wait_until(writing, 60, "the sink to write")
            await asyncio.sleep(rng.uniform(0, 0.3))
            info = await bus.js.consumer_info(STREAM, "sink")
            procs[-1].send_signal(signal.SIGKILL)
            await procs[-1].wait()
            kills.append((count(db), info.num_ack_pending))
            procs.append(await start_sink(nats_server.url, data_dir, log))
        await publisher

        await wait_until(lambda: settled(bus), 120, "every event acked")  # so committed, if acks wait for commits
        procs[-1].send_signal(signal.SIGTERM)
        assert await procs[-1].wait() == 0, log.read_text()[-3000:]

    assert all(code == -signal.SIGKILL for code in (p.returncode for p in procs[:-1]))
    assert len(kills) == 4 and all(0 < rows < len(events) for rows, _ in kills), kills  # killed mid-stream ...
    assert any(in_flight > 0 for _, in_flight in kills), kills  # ... with messages taken but not yet acked
    check_store(db, events)
    info = await bus.js.consumer_info(STREAM, "sink")
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_an_event_that_cannot_be_written_does_not_take_its_batch_down(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, tmp_path: Path
) -> None:
    db, log = data_dir / "gymforge.db", tmp_path / "sink.log"
    events = [e for i in range(40) for e in trace_events(i)]  # 320 events
    # a second trajectory for an attempt that already has one: its row breaks trajectories(task_id, attempt)
    first = next(e for e in events if e.type == "trajectory.completed")
    clash = make_envelope("trajectory.completed", TrajectoryCompleted.model_validate(first.payload),
                          producer="test")
    events.insert(len(events) // 2, clash)
    async with sinks(nats_server.url, data_dir, {"GYMFORGE_MAX_DELIVER": "2"}) as procs:
        await bus.publish_all(events)
        procs.append(await start_sink(nats_server.url, data_dir, log, {"GYMFORGE_MAX_DELIVER": "2"}))

        async def done() -> bool:
            return count(db) == len(events) and await settled(bus)

        await wait_until(done, 60, "every event recorded")
        procs[-1].send_signal(signal.SIGTERM)
        assert await procs[-1].wait() == 0, log.read_text()[-3000:]
    good = [e for e in events if e is not clash]
    con = sqlite3.connect(db)
    try:
        ledger = {r[0] for r in con.execute("SELECT id FROM ledger WHERE valid = 1")}
        assert ledger == {e.id for e in good}  # all the others landed
        invalid = con.execute("SELECT reason FROM ledger WHERE valid = 0").fetchall()
        assert len(invalid) == 1 and "UNIQUE" in invalid[0][0]  # the one that cannot, recorded with why
    finally:
        con.close()
