"""The solver role for real: solve.requested on NATS -> an episode against the offline teacher's search
policy (through the openai SDK) in the bwrap sandbox -> trajectory.completed in the sink's store; and a
solver process killed with SIGKILL mid-episode, whose attempt is redone with one trajectory per attempt."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.runtime import AgentRunner, Supervisor
from bus import Bus, EmbeddedNats, Transient, make_envelope
from bus.codec import validate_payload
from domain.payloads import PAYLOADS, TaskDrafted
from gymforge import config
from gymforge.app import build_agent
from sandbox import SandboxUnavailable
from teacher.policy import TeacherConfig
from teacher.server import Faults, TeacherServer
from tests.helpers.tasks import ReadyTask, build_task
from tests.test_runtime import wait_for, wait_until_count
from tests.test_tasks_pipeline import rows

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> ReadyTask:
    return build_task(tmp_path_factory.mktemp("solver-agent-task"), task_id="t-solver-agent")


def settings(server: EmbeddedNats, data_dir: Path, teacher: TeacherServer, **extra: object) -> config.Settings:
    return config.load({"nats_url": server.url, "data_dir": data_dir, "teacher_port": teacher.port,
                        "llm_max_retries": 2, **extra}, environ={})


async def publish_requests(bus: Bus, task: ReadyTask, attempts: int) -> list[str]:
    data = await task.upload(bus)
    ids = []
    for attempt in range(attempts):
        env = make_envelope("solve.requested", task.request(attempt, attempts, data), producer="test", key=attempt)
        await bus.publish(env)
        ids.append(env.id)
    return ids


@pytest.fixture
async def teacher() -> AsyncIterator[TeacherServer]:
    async with TeacherServer(config=TeacherConfig(solve_format_error_rate=0.15)) as server:
        yield server


async def test_solve_requests_become_trajectories_in_the_store(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, teacher: TeacherServer,
        task: ReadyTask) -> None:
    sup = Supervisor([AgentRunner(build_agent("solver", bus, settings(nats_server, data_dir, teacher)))], grace_s=2)
    running = asyncio.create_task(sup.run())
    try:
        await publish_requests(bus, task, attempts=2)
        await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories", 2, timeout=300)
    finally:
        sup.request_stop()
        await running
    trajs = await rows(sink, "SELECT * FROM trajectories ORDER BY attempt")
    assert [t["attempt"] for t in trajs] == [0, 1]
    for t in trajs:
        traj = json.loads(t["traj"])
        actions = [s["action"] for s in traj["trajectory"]]
        assert t["exit_status"] == "submitted" and t["submitted"] == 1 and t["score"] is not None
        assert actions[-1] == "submit" and "python baseline.py" in actions and actions.count("validate") >= 2
        assert t["steps"] == len(actions) >= 8 and t["tokens"] == traj["info"]["context_tokens"] > 0
        assert traj["info"]["model"] == "offline-teacher-rule-based"
        assert traj["info"]["model_stats"]["api_calls"] >= len(actions)
        # every validate score was recorded, and the submitted score is the best of them (the policy keeps it)
        scores = [s for s in traj["info"]["validate_scores"] if s is not None]
        assert scores and t["score"] == pytest.approx(max(scores) if task.bundle.direction == "maximize"
                                                      else min(scores))
    # different attempts (seeds) searched differently
    assert [s["action"] for s in json.loads(trajs[0]["traj"])["trajectory"]] != \
        [s["action"] for s in json.loads(trajs[1]["traj"])["trajectory"]]
    # the teacher's injected format errors were corrected and kept out of the clean history
    corrections = [c for t in trajs for s in json.loads(t["traj"])["trajectory"]
                   for c in s["extra_info"]["format_corrections"]]
    assert corrections and all(c["problem"] for c in corrections)
    usage = await rows(sink, "SELECT COUNT(*) AS n FROM usage WHERE role = 'solver'")
    assert usage[0]["n"] >= sum(t["steps"] for t in trajs)


async def test_tool_call_mode_through_the_sdk(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, teacher: TeacherServer,
        task: ReadyTask) -> None:
    s = settings(nats_server, data_dir, teacher, solver_action_format="tool_call", solver_max_steps=6)
    sup = Supervisor([AgentRunner(build_agent("solver", bus, s))], grace_s=2)
    running = asyncio.create_task(sup.run())
    try:
        await publish_requests(bus, task, attempts=1)
        await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories", 1, timeout=300)
    finally:
        sup.request_stop()
        await running
    traj = json.loads((await rows(sink, "SELECT traj FROM trajectories"))[0]["traj"])
    assert traj["replay_config"]["action_format"] == "tool_call"
    assert traj["info"]["exit_status"].endswith("(exit_cost)") or traj["info"]["exit_status"] == "exit_cost"
    history = traj["history"]
    assert [m["role"] for m in history[2:]] == ["assistant", "tool"] * 6
    assert all(m["tool_calls"][0]["function"]["name"] == "bash" for m in history[2::2])
    assert [m["tool_call_id"] for m in history[3::2]] == [m["tool_calls"][0]["id"] for m in history[2::2]]


async def spawn_solver(url: str, data_dir: Path, teacher_port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GYMFORGE_NATS_URL": url, "GYMFORGE_DATA_DIR": str(data_dir),
           "GYMFORGE_TEACHER_PORT": str(teacher_port), "GYMFORGE_ACK_WAIT_S": "3", "GYMFORGE_LOG_LEVEL": "warning"}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "gymforge.cli", "agent", "solver", cwd=ROOT,
                                                env=env)


async def test_a_solver_killed_mid_episode_is_redone_with_one_trajectory_per_attempt(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, task: ReadyTask, tmp_path: Path) -> None:
    async with TeacherServer(faults=Faults(latency_s=0.3)) as teacher:
        first = await spawn_solver(nats_server.url, tmp_path / "replica-1", teacher.port)
        (request_id,) = await publish_requests(bus, task, attempts=1)
        await wait_for(lambda: teacher.teacher.counters.by_purpose.get("solve", 0) >= 4, 120)
        first.send_signal(signal.SIGKILL)  # mid-episode: a few steps taken, nothing published
        await first.wait()
        calls_before = teacher.teacher.counters.by_purpose["solve"]
        second = await spawn_solver(nats_server.url, tmp_path / "replica-2", teacher.port)
        try:
            await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories", 1, timeout=300)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
    info = await bus.js.stream_info("GYMFORGE", subjects_filter="gf.trajectory.completed")
    assert info.state.subjects == {"gf.trajectory.completed": 1}
    (t,) = await rows(sink, "SELECT * FROM trajectories")
    traj = json.loads(t["traj"])
    assert t["attempt"] == 0 and t["exit_status"] == "submitted"
    # redone from scratch: the whole episode is in the record; and heartbeats kept the redo's message alive
    # past the 3 s ack wait, so no second episode ran beside it: every call since the kill is the redo's
    assert traj["trajectory"][0]["state"]["step"] == 1 and traj["trajectory"][0]["action"].startswith("ls")
    assert teacher.teacher.counters.by_purpose["solve"] - calls_before == traj["info"]["model_stats"]["api_calls"]
    ledger = await rows(sink, "SELECT parent_id FROM ledger WHERE type = 'trajectory.completed'")
    assert [r["parent_id"] for r in ledger] == [request_id]


class SandboxOutage:
    """A backend whose machine has lost its sandbox (e.g. the container engine went away)."""

    name = "outage"

    async def open(self, *args: object, **kwargs: object) -> None:
        raise SandboxUnavailable("the container engine does not answer")


async def test_a_sandbox_outage_is_transient_for_the_solver_and_the_debugger(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, task: ReadyTask) -> None:  # fmt: skip
    """Not the task's fault: nak'ed and retried later (bus/acks.py), never a dead letter or a failed attempt."""
    async with TeacherServer() as teacher:
        s = settings(nats_server, data_dir, teacher)
        data = await task.upload(bus)
        requests = {
            "solver": make_envelope("solve.requested", task.request(0, 1, data), producer="test"),
            "debugger": make_envelope("task.drafted", TaskDrafted(bundle=task.request(0, 1, data).bundle, revision=0),
                                      producer="test"),
        }
        for role, env in requests.items():
            agent = build_agent(role, bus, s)
            agent.backend = SandboxOutage()  # type: ignore[attr-defined]
            try:
                with pytest.raises(Transient, match="sandbox unavailable: the container engine does not answer"):
                    await agent.handle(validate_payload(env, PAYLOADS))
            finally:
                await agent.stop()
