"""The whole pipeline with the offline teacher in each reply style (teacher/styles.py: its rule-based replies
dressed as real models write them): a given topic on the built-in iris data -> a validated task (its first
draft carries a planted defect, so a fix round runs in the style too) -> 2 solver attempts -> accepted
trajectories -> `export sft`. Nothing the drafts inside thinking hold (a wrong topic, broken files, the
command `rm -rf data && python prepare.py`) is used, and no thinking reaches the export unless kept on request.
For real: NATS, the openai SDK over HTTP, the bwrap sandbox, the sink's SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agents.runtime import AgentRunner, Supervisor
from bus import Bus, EmbeddedNats, make_envelope
from domain.payloads import TopicRequested
from gymforge import config
from gymforge.app import build_agent
from gymforge.export_sft import Filters, export_sft
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer
from teacher.styles import DRAFT_COMMAND, DRAFT_MARK
from tests.test_runtime import _count_or_zero as count_or_zero
from tests.test_tasks_pipeline import rows

pytestmark = pytest.mark.timeout(240)

ROLES = ("proposer", "verifier", "coder", "debugger", "solver", "filter")
TOPIC = TopicRequested(domain="botany", count=1, topic="Classify iris species from flower measurements",
                       task_type="tabular_classification")
TEXT = {"proposer_structured_output": "off", "coder_structured_output": "off"}  # topics and bundles as text
RUNS: dict[str, dict[str, Any]] = {  # style -> extra settings (without them: topics and metadata as JSON schema)
    "think": TEXT,  # drafts of the topic JSON and of FILE blocks inside the thinking
    "reasoning_field": {},  # thinking beside structured replies
    "markdown": TEXT,  # markdown headers, JSON habits, sh/console blocks
    "tool_object": {"solver_action_format": "tool_call"},
    "diff": {},
    "cutoff": {},  # structured replies cut off too
    "mixed": {**TEXT, "solver_action_format": "tool_call"},
}
THINKING = ("<think>", "</think>", DRAFT_MARK, DRAFT_COMMAND, "No, wait.")
FIGURES: dict[str, str] = {}


async def wait_for_end(db: Path, timeout: float) -> None:
    """Until the task is graded or rejected; a dead letter (e.g. a reply no parser could read) ends it at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await count_or_zero(db, "SELECT COUNT(*) FROM tasks WHERE status IN ('graded','rejected')") >= 1:
            return
        if await count_or_zero(db, "SELECT COUNT(*) FROM dead_letters"):
            letters = await rows(db, "SELECT * FROM dead_letters")
            raise AssertionError(f"dead letters: {[(d.get('subject'), d.get('reason')) for d in letters]}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"no graded or rejected task within {timeout} s")


@pytest.mark.parametrize("style", list(RUNS))
async def test_a_run_in_each_style_yields_validated_tasks_and_accepted_trajectories(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, tmp_path: Path, style: str) -> None:
    started = time.monotonic()
    async with TeacherServer(config=TeacherConfig(style=style, defect_rate=1.0)) as teacher:
        s = config.load({"nats_url": nats_server.url, "data_dir": data_dir, "teacher_port": teacher.port,
                         "attempts": 2, "llm_max_retries": 2, "filter_mode": "valid", "solver_max_steps": 30,
                         **RUNS[style]}, environ={})
        sup = Supervisor([AgentRunner(build_agent(r, bus, s)) for r in ROLES], grace_s=2)
        running = asyncio.create_task(sup.run())
        try:
            await bus.publish(make_envelope("topic.requested", TOPIC, producer="test"))
            await wait_for_end(sink, timeout=200)
        finally:
            sup.request_stop()
            await running
        by_purpose = dict(teacher.teacher.counters.by_purpose)
        structured = teacher.teacher.counters.structured
    # topics and the task's metadata came as JSON schema replies, unless the run asked for text
    assert (structured == 0) if RUNS[style].get("coder_structured_output") == "off" else structured >= 2

    tasks = await rows(sink, "SELECT * FROM tasks")
    assert [t["status"] for t in tasks] == ["graded"], [(t["task_id"], t["status"], t["reason"]) for t in tasks]
    (task,) = tasks
    assert task["revision"] >= 1  # the planted defect was fixed, in the style's fix replies
    bundle = json.loads(task["bundle"])
    assert DRAFT_MARK not in json.dumps(bundle) and "iris" in json.dumps(bundle).lower()
    topics = await rows(sink, "SELECT title FROM topics")
    assert [t["title"] for t in topics] == [TOPIC.topic]

    trajs = await rows(sink, "SELECT * FROM trajectories ORDER BY attempt")
    assert [t["attempt"] for t in trajs] == [0, 1]
    assert any(t["status"] == "accepted" for t in trajs), [(t["status"], t["exit_status"]) for t in trajs]
    for t in trajs:
        traj = json.loads(t["traj"])
        actions = [step["action"] for step in traj["trajectory"]]
        assert t["exit_status"] == "submitted" and actions[-1] == "submit", (t["exit_status"], actions)
        assert not any("rm -rf" in a for a in actions)
        for step in traj["trajectory"]:  # thinking is kept beside the reply, never in what was parsed
            assert not any(mark in f"{step['thought']}\n{step['action']}\n{step['response']}" for mark in THINKING)
        for m in traj["history"]:
            assert not any(mark in str(m.get("content") or "") for mark in THINKING), m
        if style in ("think", "reasoning_field", "cutoff"):
            assert any(DRAFT_COMMAND in (step["extra_info"].get("reasoning") or "") for step in traj["trajectory"])
        if style == "cutoff":  # every step's first reply was cut off and re-asked
            cut = [c for step in traj["trajectory"] for c in step["extra_info"]["format_corrections"]]
            assert len(cut) >= len(actions) and all("cut off" in c["problem"] for c in cut)

    if style == "diff":  # the first fix came as a diff or elided: refused, then sent whole
        assert by_purpose["fix_task"] >= 2, by_purpose
    if style == "cutoff":  # every first reply was cut off and re-asked
        assert all(by_purpose[p] >= 2 for p in ("propose_topics", "write_task", "fix_task")), by_purpose
    usage = await rows(sink, "SELECT * FROM usage")
    assert {u["role"] for u in usage} == {"proposer", "coder", "debugger", "solver"}
    # the solver's append-only conversation hits the (offline) prefix cache; thinking is counted apart
    solver = [u for u in usage if u["role"] == "solver"]
    cached_share = sum(u["cached_tokens"] for u in solver) / sum(u["prompt_tokens"] for u in solver)
    assert cached_share > 0.5, cached_share
    thinking = sum(u["reasoning_tokens"] for u in usage)
    assert (thinking > 0) == (style in ("think", "reasoning_field", "cutoff", "mixed")), thinking

    out = tmp_path / "sft"
    summary = await export_sft(s, out, Filters())
    exported = (out / "train.jsonl").read_text()
    assert summary.written >= 1 and exported.strip()
    assert not any(mark in exported for mark in THINKING), style
    assert "reasoning_content" not in exported
    if style in ("think", "reasoning_field"):  # kept on request: as the assistant messages' reasoning_content
        kept = tmp_path / "sft-kept"
        await export_sft(s, kept, Filters(reasoning="keep"))
        lines = [json.loads(line) for line in (kept / "train.jsonl").read_text().splitlines()]
        assistants = [m for line in lines for m in line["messages"] if m["role"] == "assistant"]
        assert any(DRAFT_COMMAND in (m.get("reasoning_content") or "") for m in assistants)
        assert not any(mark in m["content"] for m in assistants for mark in THINKING)
    FIGURES[style] = (f"{time.monotonic() - started:.1f} s, {by_purpose} teacher calls, "
                      f"{sum(1 for t in trajs if t['status'] == 'accepted')}/2 accepted, solver prompt tokens "
                      f"{cached_share:.0%} cached, {thinking} reasoning tokens")
    print(f"\n{style}: {FIGURES[style]}")
