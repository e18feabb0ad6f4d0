"""`gymforge export sft | traj | hf`: a real store filled by the real sink (events published on a real
nats-server, large trajectories travelling through the object store), then the real CLI, checked by
loading its output with `datasets` and against the published trajectories."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import pytest

import prompts
from agents.runtime import AgentContext, AgentRunner, Supervisor
from agents.sink import SinkAgent
from bus import Bus, BusSettings, EmbeddedNats
from bus.codec import make_envelope
from domain.payloads import (
    PAYLOADS,
    TaskGraded,
    TaskValidated,
    TrajectoryAccepted,
    TrajectoryCompleted,
    TrajectoryRejected,
)
from domain.tasks import DataRef, TaskBundle
from domain.tokens import conversation_tokens, estimate
from domain.trajectory import Trajectory
from gymforge import export_hf, sft_format
from gymforge.export_sft import Skipped, example_of, sft_line
from tests.helpers.cli import Result, gymforge
from tests.helpers.trajectories import make_trajectory
from tests.test_runtime import wait_until_count

OFFLINE = "nats://127.0.0.1:1"  # the exports never touch the bus
ROLES_AFTER_SYSTEM = ("user", "assistant")
MESSAGE_KEYS = {"system": {"role", "content"}, "user": {"role", "content"},
                "assistant": {"role", "content", "tool_calls"}, "tool": {"role", "content", "tool_call_id"}}


# --- realistic trajectories, as the solver records them -------------------------------------------


@dataclass
class Step:
    thought: str
    command: str
    observation: str
    score: float | None = None


@dataclass
class Attempt:
    task_id: str
    attempt: int
    steps: list[Step]
    verdict: str  # accepted | rejected
    tool_mode: bool = False
    score: float | None = None
    exit_status: str = "submitted"


def validate_observation(baseline: float, score: float, metric: str) -> str:
    return prompts.render("solver_validate", error=None, baseline={metric: baseline}, metrics={metric: score})


def instance(task_id: str, metric: str, direction: str, baseline: float) -> str:
    facts = {"task_id": task_id, "task_type": "tabular_classification", "metric": metric, "direction": direction,
             "baseline_score": baseline, "training_timeout": 300}
    # prompts.render's own first parameter is `name`, which this template uses too: render it directly
    return prompts._template("solver_instance").render(
        name=task_id.replace("-", " "), metric=metric, direction=direction, baseline_score=baseline,
        description="Predict the label of each row of data/test.csv.\n{dataset_docs}\n"
                    "SUBMISSION FORMAT: submission.csv with columns id,label.",
        files=["baseline.py", "evaluate.py", "sample_submission.csv"], facts=facts).strip() + "\n"


def reply(step: Step) -> str:
    return f"THOUGHT: {step.thought}\n\n```bash\n{step.command}\n```\n"


def trajectory(a: Attempt, metric: str, direction: str, baseline: float) -> dict[str, Any]:
    fmt = "tool_call" if a.tool_mode else "thought_action"
    base = {"agent": "solver"}
    history: list[dict[str, Any]] = [
        {"role": "system", "content": prompts.render("solver_system", action_format=fmt, max_steps=30,
                                                     training_timeout=300, command_timeout=25),
         "message_type": "system_prompt", **base},
        {"role": "user", "content": instance(a.task_id, metric, direction, baseline), "message_type": "observation",
         **base},
    ]
    steps = []
    for i, s in enumerate(a.steps):
        call_id = f"call_{a.task_id[:4]}_{i}" if a.tool_mode else None
        if a.tool_mode:
            msg = {"role": "assistant", "content": s.thought, "message_type": "action", **base, "thought": s.thought,
                   "action": s.command, "tool_calls": [{"id": call_id, "type": "function", "function": {
                       "name": "bash", "arguments": json.dumps({"command": s.command})}}]}
            obs = {"role": "tool", "content": s.observation, "message_type": "observation", **base,
                   "tool_call_id": call_id}
        else:
            msg = {"role": "assistant", "content": reply(s), "message_type": "action", **base, "thought": s.thought,
                   "action": s.command}
            if i == 0:  # a model that thinks aloud: its reasoning is recorded beside the reply
                msg["reasoning"] = thinking(a.task_id)
            obs = {"role": "user", "content": s.observation, "message_type": "observation", **base}
        query = history[-1:] if i else history[:]
        corrections = [{"reply": "I will look around.", "problem": "no fenced code block"}] if i == 1 else []
        steps.append({"response": msg["content"], "thought": s.thought, "action": s.command,
                      "observation": s.observation, "execution_time": 0.4 + i,
                      "state": {"step": i, "score": s.score}, "query": query,
                      "extra_info": {"format_corrections": corrections, "tool_call_id": call_id}})
        history += [msg, obs]
    tokens = conversation_tokens(history)
    return {
        "environment": "gymforge:bwrap",
        "trajectory": steps,
        "history": history,
        "info": {"exit_status": a.exit_status, "exit_detail": "", "submission": "submission.csv",
                 "score": a.score, "metrics": {metric: a.score} if a.score is not None else None,
                 "baseline_score": baseline, "metric": metric, "direction": direction,
                 "validate_scores": [s.score for s in a.steps if s.score is not None], "context_tokens": tokens,
                 "model_stats": {"instance_cost": 0.0, "tokens_sent": tokens * 3, "tokens_received": tokens // 5,
                                 "api_calls": len(a.steps)},
                 "task_id": a.task_id, "attempt": a.attempt, "model": "gymforge-offline-teacher"},
        "replay_config": {"action_format": fmt, "seed": a.attempt, "limits": {"max_steps": 30}, "model": "teacher"},
    }


def thinking(task_id: str) -> str:
    return f"(thinking) {task_id}: the baseline first, then tune it."


def solving(metric: str, baseline: float, score: float, extra: list[Step] | None = None) -> list[Step]:
    return [
        Step("Let me look at the workspace first.", "ls -la && head -3 data/train.csv",
             "baseline.py\nevaluate.py\nsample_submission.csv\ndata\nid,bill_length_mm,species\n0,39.1,Adelie"),
        Step("Run the baseline to get a submission.", "python baseline.py", "(no output)"),
        *(extra or []),
        Step("Raise the number of trees and validate.", "sed -i 's/n_estimators=50/n_estimators=300/' baseline.py"
             " && python baseline.py", "(no output)"),
        Step("Check the score.", "validate", validate_observation(baseline, score, metric), score),
        Step("Better than the baseline: submit.", "submit", validate_observation(baseline, score, metric), score),
    ]


def long_steps(n: int, chars: int) -> list[Step]:
    body = "epoch loss acc\n" * (chars // 15)
    return [Step(f"Train variant {i} and read the log.", f"python train.py --variant {i}",
                 body[: chars // 2] + f"\n[... {chars} characters elided ...]\n" + body[: chars // 2])
            for i in range(n)]


TASKS = {  # task id -> (metric, direction, baseline, solve rate or None when never graded)
    "penguins-species": ("accuracy", "maximize", 0.81, 1.0),
    "co2-forecast": ("rmse", "minimize", 2.4, 0.5),
    "cars-mpg": ("r2", "maximize", 0.62, None),
    "wine-quality": ("f1", "maximize", 0.55, 0.25),
    "no-trajectories": ("accuracy", "maximize", 0.7, None),
}
HUGE_FIRST = Step("Write the whole pipeline at once.", "cat > train.py <<'EOF'\n" + "x = 1\n" * 23_000 + "EOF",
                  "(no output)")


def reporting(metric: str, baseline: float, score: float) -> list[Step]:
    """Solving, with a final reply that writes out a report of ~37,000 estimated tokens before it submits."""
    steps = solving(metric, baseline, score)
    report = "".join(f"Experiment {i}: n_estimators={50 * i}, {metric} on the validation split {score:.4f}.\n"
                     for i in range(2000))
    steps[-1] = replace(steps[-1], thought="Submit. What I tried:\n" + report)
    return steps

ATTEMPTS = [  # in publication (= time) order
    Attempt("co2-forecast", 0, solving("rmse", 2.4, 1.9), "accepted", tool_mode=True, score=1.9),
    Attempt("penguins-species", 1, solving("accuracy", 0.81, 0.93, long_steps(12, 16_000)), "accepted", score=0.93),
    Attempt("cars-mpg", 0, solving("r2", 0.62, 0.7), "accepted", score=0.7),
    Attempt("co2-forecast", 1, solving("rmse", 2.4, 2.9)[:3], "rejected", tool_mode=True,
            exit_status="exit_cost"),
    Attempt("wine-quality", 0, [HUGE_FIRST, *solving("f1", 0.55, 0.6)], "accepted", score=0.6),
    Attempt("penguins-species", 0, solving("accuracy", 0.81, 0.88), "accepted", score=0.88),
    Attempt("wine-quality", 1, reporting("f1", 0.55, 0.58), "accepted", score=0.58),
]


DATASETS = {  # task id -> its dataset: two tasks on one dataset, which export hf must keep in one split
    "penguins-species": "palmerpenguins",
    "co2-forecast": "fuel-consumption-co2",
    "cars-mpg": "fuel-consumption-co2",
    "wine-quality": "uci-wine-quality",
    "no-trajectories": "uci-wine-quality",
}


def bundle(task_id: str) -> TaskBundle:
    metric, direction, _, _ = TASKS[task_id]
    return TaskBundle(task_id=task_id, name=task_id.replace("-", " "), task_type="tabular_classification",
                      description="Predict.\n{dataset_docs}\nSUBMISSION FORMAT: id,label",
                      dataset_name=DATASETS[task_id],
                      metric=metric, direction=direction, files={"baseline.py": "print('hi')\n"},
                      data=DataRef(key="k" * 16, splits={"train": "train.parquet"}))


async def fill_store(data_dir: Path, jetstream: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Publish validated tasks, trajectories, verdicts and grades; the real sink writes the store."""
    trajs: dict[tuple[str, int], dict[str, Any]] = {}
    async with EmbeddedNats(jetstream, port=0) as server:
        bus = await Bus.connect(BusSettings(url=server.url), types=PAYLOADS)
        sup = Supervisor([AgentRunner(SinkAgent(AgentContext(bus=bus, data_dir=data_dir), db_path=data_dir / "gymforge.db"))])
        sink = asyncio.create_task(sup.run())
        try:
            published = 0
            for task_id, (metric, _, baseline, _) in TASKS.items():
                await bus.publish(make_envelope("task.validated", TaskValidated(
                    bundle=bundle(task_id), revision=0, baseline_score=baseline, baseline_metrics={metric: baseline},
                    runtime_s=1.5, rounds=1), producer="debugger"))
                published += 1
            for a in ATTEMPTS:
                metric, direction, baseline, _ = TASKS[a.task_id]
                traj = trajectory(a, metric, direction, baseline)
                trajs[(a.task_id, a.attempt)] = traj
                done = make_envelope("trajectory.completed", TrajectoryCompleted(
                    task_id=a.task_id, attempt=a.attempt, attempts_total=2, exit_status=a.exit_status,
                    submitted=a.score is not None, score=a.score, baseline_score=baseline, metric=metric,
                    direction=direction, validate_scores=traj["info"]["validate_scores"],
                    tokens=conversation_tokens(traj["history"]), steps=len(a.steps), trajectory=traj),
                    producer="solver")
                await bus.publish(done)
                if a.verdict == "accepted":
                    gain = abs((a.score or 0) - baseline)
                    verdict = make_envelope("trajectory.accepted", TrajectoryAccepted(
                        task_id=a.task_id, attempt=a.attempt, trajectory_event_id=done.id, score=a.score or 0,
                        gain=gain, tokens=conversation_tokens(traj["history"])), producer="filter", parent=done)
                else:
                    verdict = make_envelope("trajectory.rejected", TrajectoryRejected(
                        task_id=a.task_id, attempt=a.attempt, trajectory_event_id=done.id,
                        reasons=["no valid submission"]), producer="filter", parent=done)
                await bus.publish(verdict)
                published += 2
                await asyncio.sleep(0.01)  # distinct times, for --order time
            for task_id, (_, _, baseline, rate) in TASKS.items():
                if rate is not None:
                    await bus.publish(make_envelope("task.graded", TaskGraded(
                        task_id=task_id, attempts=4, accepted=int(rate * 4), solve_rate=rate, best_score=None,
                        baseline_score=baseline, gain=None), producer="filter"))
                    published += 1
            db = data_dir / "gymforge.db"
            await wait_until_count(db, "SELECT COUNT(*) FROM ledger", published, timeout=60)
            await wait_until_count(db, "SELECT COUNT(*) FROM trajectories WHERE traj IS NOT NULL"
                                       " AND status != 'completed'", len(ATTEMPTS), timeout=30)
        finally:
            sup.request_stop()
            await sink
            await bus.close()
    return trajs


@dataclass
class Filled:
    data_dir: Path
    trajs: dict[tuple[str, int], dict[str, Any]]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    root = tmp_path_factory.mktemp("sft-store")
    data_dir = root / "data"
    data_dir.mkdir()
    trajs = asyncio.run(fill_store(data_dir, root / "jetstream"))
    yield Filled(data_dir, trajs)


async def export(filled: Filled, *args: str, env: dict[str, str] | None = None) -> Result:
    return await gymforge("export", *args, url=OFFLINE, data_dir=filled.data_dir, timeout=120, env=env)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_conversation(messages: list[dict[str, Any]], max_tokens: int = 32_000) -> None:
    """System, then user and assistant strictly alternating (an observation of tool-call mode is a `tool`
    answer to the call before it), ending with the final assistant reply: OpenAI's chat fine-tuning shape."""
    assert messages[0]["role"] == "system" and messages[1]["role"] == "user"
    for i, m in enumerate(messages[1:]):
        want = ROLES_AFTER_SYSTEM[i % 2]
        assert m["role"] == want or (want == "user" and m["role"] == "tool" and i > 0), (i, m["role"])
        assert set(m) <= MESSAGE_KEYS[m["role"]], m.keys()
        if m["role"] == "tool":
            assert m["tool_call_id"] == messages[i]["tool_calls"][0]["id"]
    assert messages[-1]["role"] == "assistant"
    assert conversation_tokens(messages) <= max_tokens


def expected_messages(traj: dict[str, Any], objects: bool = False) -> list[dict[str, Any]]:
    """The full conversation, written out from the history independently: it ends with the final reply
    (the final observation teaches nothing). With `objects` (TRL's shape) a tool call's arguments are
    the object its JSON text holds, else the text as recorded."""
    out = []
    for m in traj["history"]:
        msg = {"role": m["role"], "content": m["content"]}
        if m.get("tool_calls"):
            msg["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(
                c["function"]["arguments"])}} if objects else c for c in m["tool_calls"]]
        if m["role"] == "tool":
            msg["tool_call_id"] = m["tool_call_id"]
        out.append(msg)
    return out[:-1] if out[-1]["role"] != "assistant" else out


def command(reply: dict[str, Any]) -> str:
    """The command of an exported assistant message: its tool call's, else its fenced bash block's."""
    if reply.get("tool_calls"):
        args = reply["tool_calls"][0]["function"]["arguments"]
        return (json.loads(args) if isinstance(args, str) else args)["command"]
    return reply["content"].rsplit("```bash\n", 1)[1].split("\n```", 1)[0]


NOTE = re.compile(r"\n\n\[(\d+) earlier turns? of this episode \(a command and its output each\) left out to fit "
                  r"the length limit\]$")


def check_truncation(messages: list[dict[str, Any]], full: list[dict[str, Any]], max_tokens: int) -> int:
    """`messages` is `full` with whole turns dropped from the middle, oldest first, and the note saying how
    many; it keeps the system prompt, the task and the final submit turn. Returns how many were dropped."""
    check_conversation(messages, max_tokens)
    assert messages[0] == full[0] and command(messages[-1]) == command(full[-1]) == "submit"
    note = NOTE.search(messages[1]["content"])
    if note is None:
        assert messages == full
        return 0
    dropped = int(note.group(1))
    assert messages[1] == {**full[1], "content": full[1]["content"] + note.group(0)}
    kept = len(messages) - 2
    assert messages[2:] == full[len(full) - kept:] and len(full) - 2 - kept == 2 * dropped
    newest_dropped = full[len(full) - kept - 2: len(full) - kept]
    assert newest_dropped[0]["role"] == "assistant"  # a whole turn, and with it the conversation would not fit:
    assert conversation_tokens(messages) + conversation_tokens(newest_dropped) > max_tokens  # none dropped needlessly
    return dropped


# --- export sft ----------------------------------------------------------------------------------


async def test_sft_trl_curriculum_loads_with_datasets_and_truncates_at_a_turn(filled: Filled, tmp_path: Path
                                                                               ) -> None:
    out = tmp_path / "sft"
    r = await export(filled, "sft", "--out", str(out))
    assert r.code == 0, r.err
    lines = jsonl(out / "train.jsonl")
    # accepted only; wine-quality 1's final submit reply alone is over 32000 estimated tokens: skipped
    keys = [(x["metadata"]["task_id"], x["metadata"]["attempt"]) for x in lines]
    assert keys == [("penguins-species", 0), ("penguins-species", 1), ("co2-forecast", 0), ("wine-quality", 0),
                    ("cars-mpg", 0)]
    assert [x["metadata"]["solve_rate"] for x in lines] == [1.0, 1.0, 0.5, 0.25, None]  # easy first

    ds = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 5 and "messages" in ds.column_names
    for row, line in zip(ds, lines, strict=True):
        assert [m["role"] for m in row["messages"]] == [m["role"] for m in line["messages"]]
        assert [m["content"] for m in row["messages"]] == [m["content"] for m in line["messages"]]
        check_conversation(line["messages"])

    for line in lines:
        meta, traj = line["metadata"], filled.trajs[(line["metadata"]["task_id"], line["metadata"]["attempt"])]
        metric, direction, baseline, rate = TASKS[meta["task_id"]]
        full = expected_messages(traj, objects=True)
        dropped = check_truncation(line["messages"], full, 32_000)
        assert meta["truncated"] == (dropped > 0)
        assert meta["tokens"] == conversation_tokens(line["messages"])
        assert (meta["metric"], meta["direction"], meta["baseline_score"], meta["solve_rate"]) == (
            metric, direction, baseline, rate)
        assert meta["dataset_name"] == DATASETS[meta["task_id"]]
        assert meta["score"] == traj["info"]["score"] and meta["exit_status"] == "submitted"
        assert meta["gain"] == pytest.approx(abs(meta["score"] - baseline)) and meta["status"] == "accepted"
        assert set(meta) == set(sft_format.METADATA_FIELDS)

    long = lines[1]  # 12 training turns of ~4,000 tokens: the oldest 5 go (with the two turns before them)
    assert conversation_tokens(expected_messages(filled.trajs[("penguins-species", 1)])) > 40_000
    full = expected_messages(filled.trajs[("penguins-species", 1)])
    assert long["metadata"]["truncated"] and check_truncation(long["messages"], full, 32_000) == 7
    assert [command(m) for m in long["messages"][-5::2]] == ["sed -i 's/n_estimators=50/n_estimators=300/' "
                                                             "baseline.py && python baseline.py", "validate", "submit"]
    wine = lines[3]  # its huge first reply is a middle turn: dropped, the rest kept
    assert check_truncation(wine["messages"], expected_messages(filled.trajs[("wine-quality", 0)]), 32_000) == 1
    assert wine["messages"][2]["content"].startswith("THOUGHT: Let me look at the workspace first.")
    assert not lines[0]["metadata"]["truncated"]

    tool = lines[2]  # the tool-call attempt: tool role observations with their call id, and the tool spec
    assert tool["tools"] == [sft_format.BASH_TOOL] and "tools" not in lines[0]
    calls = [m for m in tool["messages"] if m["role"] == "assistant"]
    # TRL's shape: the arguments an object (chat templates serialise it; a JSON string would be encoded twice)
    assert [m["tool_calls"][0]["function"]["arguments"] for m in calls] == [
        {"command": s.command} for s in solving("rmse", 2.4, 1.9)]
    for a, o in zip(tool["messages"][2::2], tool["messages"][3::2], strict=False):
        assert o["role"] == "tool" and o["tool_call_id"] == a["tool_calls"][0]["id"]
    # format corrections live in extra_info, never in the conversation
    assert not any("I will look around." in m["content"] for x in lines for m in x["messages"])

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trajectories"] == 5 and manifest["truncated"] == 2 and manifest["format"] == "trl"
    assert manifest["dropped_turns"] == 8
    assert manifest["skipped"] == {"too_long": 1} and manifest["skipped_ids"] == ["wine-quality__1: too_long"]
    assert manifest["token_estimator"] == "estimated ceil(chars/4)"
    assert manifest["filters"] == {"status": "accepted", "tasks": None, "order": "curriculum", "max_tokens": 32_000,
                                   "reasoning": "drop"}
    assert "exported 5 trajectory(ies)" in r.out and "1 too_long" in r.out and "8 middle turn(s) dropped" in r.out
    check_lengths(manifest, lines, r.out)


def check_lengths(manifest: dict[str, Any], lines: list[dict[str, Any]], out: str) -> None:
    """The manifest and the command's output name the longest example (its conversation and tool specs,
    estimated) and a max_length above it: TRL's default of 1024 would cut every one of these examples."""
    sizes = [conversation_tokens(x["messages"]) + (estimate(json.dumps(x["tools"])) if x.get("tools") else 0)
             for x in lines]
    longest, max_length = max(sizes), manifest["max_length"]
    assert manifest["longest_example_tokens"] == longest > 1024
    assert longest * 1.25 <= max_length < longest * 1.25 + 1024 and max_length % 1024 == 0
    assert f"longest example ~{longest} estimated tokens: train with max_length={max_length}" in out


async def test_sft_openai_time_order_all_statuses(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "oa"
    r = await export(filled, "sft", "--out", str(out), "--format", "openai", "--order", "time", "--status", "all",
                     "--max-tokens", "6000")
    assert r.code == 0, r.err
    lines, meta = jsonl(out / "train.jsonl"), jsonl(out / "metadata.jsonl")
    assert len(lines) == len(meta) == 6  # all seven, minus wine-quality 1 (too long)
    assert [(m["task_id"], m["attempt"]) for m in meta] == [
        (a.task_id, a.attempt) for a in ATTEMPTS if (a.task_id, a.attempt) != ("wine-quality", 1)]  # published
    for line, m in zip(lines, meta, strict=True):
        assert set(line) <= {"messages", "tools"}, set(line)  # nothing OpenAI's format does not know
        for call in (c for msg in line["messages"] for c in msg.get("tool_calls", ())):
            assert isinstance(call["function"]["arguments"], str)  # OpenAI's format: JSON text
            assert set(json.loads(call["function"]["arguments"])) == {"command"}
        assert ("tools" in line) == (m["task_id"] in {a.task_id for a in ATTEMPTS if a.tool_mode})
        check_conversation(line["messages"], 6000)
        assert m["tokens"] == conversation_tokens(line["messages"])
    rejected = meta[3]
    assert (rejected["task_id"], rejected["status"], rejected["exit_status"]) == ("co2-forecast", "rejected",
                                                                                  "exit_cost")
    assert rejected["gain"] is None and rejected["score"] is None
    assert meta[1]["truncated"] and meta[1]["tokens"] <= 6000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == ["train.jsonl", "metadata.jsonl"] and manifest["format"] == "openai"
    check_lengths(manifest, lines, r.out)


async def test_sft_reasoning_is_dropped_by_default_and_kept_as_reasoning_content(filled: Filled, tmp_path: Path
                                                                                ) -> None:
    for mode in ("drop", "keep"):
        out = tmp_path / mode
        args = ("--reasoning", mode) if mode == "keep" else ()
        r = await export(filled, "sft", "--out", str(out), "--status", "all", *args)
        assert r.code == 0, r.err
        lines = jsonl(out / "train.jsonl")
        kept = [(line["metadata"]["task_id"], m) for line in lines for m in line["messages"]
                if "reasoning_content" in m]
        text = json.dumps(lines)
        if mode == "drop":
            assert not kept and "(thinking)" not in text
        else:  # the first turn's thinking, where truncation kept that turn
            assert len(kept) >= 2
            assert all(m["reasoning_content"] == thinking(task_id) for task_id, m in kept)
            assert {m["role"] for _, m in kept} == {"assistant"}
            assert all("(thinking)" not in m["content"] for _, m in kept)
            for line in lines:
                assert line["metadata"]["tokens"] == conversation_tokens(line["messages"])
        assert json.loads((out / "manifest.json").read_text())["filters"]["reasoning"] == mode
    r = await export(filled, "sft", "--out", str(tmp_path / "bad"), "--reasoning", "maybe")
    assert r.code == 2 and len(r.err.strip().splitlines()) <= 2 and "Traceback" not in r.err


async def test_sft_task_filter_and_a_limit_nothing_fits(filled: Filled, tmp_path: Path) -> None:
    r = await export(filled, "sft", "--out", str(tmp_path / "one"), "--task", "cars-mpg")
    assert r.code == 0, r.err
    assert [x["metadata"]["task_id"] for x in jsonl(tmp_path / "one" / "train.jsonl")] == ["cars-mpg"]
    tiny = await export(filled, "sft", "--out", str(tmp_path / "tiny"), "--max-tokens", "50")
    assert tiny.code == 1 and "no trajectory gave a training example" in tiny.err
    assert json.loads((tmp_path / "tiny" / "manifest.json").read_text())["skipped"] == {"too_long": 6}


# --- export traj ---------------------------------------------------------------------------------


async def test_traj_files_are_the_stored_trajectories_in_swe_agents_shape(filled: Filled, tmp_path: Path) -> None:
    from tests.test_swe_traj import check_swe_traj

    out = tmp_path / "traj"
    r = await export(filled, "traj", "--out", str(out), "--status", "all")
    assert r.code == 0, r.err
    files = sorted(p.name for p in out.glob("*.traj"))
    assert files == sorted(f"{t}__{a}.traj" for t, a in filled.trajs)
    for (task_id, attempt), traj in filled.trajs.items():
        got = json.loads((out / f"{task_id}__{attempt}.traj").read_text())
        check_swe_traj(got, traj, f"{task_id}__{attempt}")  # the stored record, SWE-agent's replay config
        parser = got["replay_config"]["agent"]["tools"]["parse_function"]["type"]
        assert parser == ("function_calling" if traj["replay_config"]["action_format"] == "tool_call"
                          else "thought_action")
    accepted = await export(filled, "traj", "--out", str(tmp_path / "acc"), "--task", "co2-forecast")
    assert accepted.code == 0 and [p.name for p in (tmp_path / "acc").glob("*.traj")] == ["co2-forecast__0.traj"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# --- export hf -----------------------------------------------------------------------------------


def test_the_split_hash_puts_the_fixture_datasets_on_both_sides() -> None:
    sides = {export_hf.split_of(DATASETS[t], 0.5) for t, _ in filled_keys()}
    assert sides == {"train", "test"}  # else the hf test below could not see a dataset kept out of a split
    assert {export_hf.split_of(d, 0.1) for d in DATASETS.values()} == {"train"}  # the push test's default share


def test_a_trajectory_without_a_stored_task_is_split_by_its_task_id() -> None:
    row = {"task_id": "lost-task", "attempt": 0, "dataset_name": None}
    assert export_hf.split_key(row) == "task:lost-task"
    assert export_hf.split_key({**row, "dataset_name": "palmerpenguins"}) == "palmerpenguins"


def filled_keys() -> list[tuple[str, int]]:
    return [(a.task_id, a.attempt) for a in ATTEMPTS]


async def test_hf_datasetdict_splits_by_dataset(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    r = await export(filled, "hf", "--out", str(out), "--status", "all", "--test-share", "0.5")
    assert r.code == 0, r.err
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "test"}
    names = {name: set(dd[name]["dataset_name"]) for name in dd}
    assert names["train"] and names["test"] and not names["train"] & names["test"]
    assert names["train"] | names["test"] == {DATASETS[t] for t, _ in filled_keys()}
    for name in dd:
        for row in dd[name]:
            assert row["dataset_name"] == DATASETS[row["task_id"]]
            assert export_hf.split_of(row["dataset_name"], 0.5) == name
    # co2-forecast and cars-mpg share their dataset: both on its side, which is not the side their task ids hash to
    side = {name for name in dd if {"co2-forecast", "cars-mpg"} & set(dd[name]["task_id"])}
    assert side == {export_hf.split_of("fuel-consumption-co2", 0.5)}
    assert {"co2-forecast", "cars-mpg"} <= set(dd[next(iter(side))]["task_id"])
    assert {export_hf.split_of("co2-forecast", 0.5), export_hf.split_of("cars-mpg", 0.5)} == {"train"} != side
    sft = tmp_path / "sft"
    assert (await export(filled, "sft", "--out", str(sft), "--status", "all")).code == 0
    by_key = {(x["metadata"]["task_id"], x["metadata"]["attempt"]): x for x in jsonl(sft / "train.jsonl")}
    rows = [row for name in dd for row in dd[name]]
    assert len(rows) == len(by_key) == 6
    for row in rows:
        line = by_key[(row["task_id"], row["attempt"])]
        assert [{k: v for k, v in m.items() if v is not None} for m in row["messages"]] == line["messages"]
        assert {k: row[k] for k in sft_format.METADATA_FIELDS} == line["metadata"]
        assert (json.loads(row["tools"]) if row["tools"] else None) == line.get("tools")
    calls = [c for row in rows for m in row["messages"] for c in m["tool_calls"] or ()]
    assert calls and all(set(c["function"]["arguments"]) == {"command"} for c in calls)  # objects, as in trl
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"] == {"too_long": 1} and manifest["pushed_to"] is None
    assert manifest["split_by"] == "sha256(dataset_name)"
    assert sum(s["trajectories"] for s in manifest["splits"].values()) == 6
    assert {k: s["datasets"] for k, s in manifest["splits"].items()} == {k: len(v) for k, v in names.items()}
    assert not [p for p in out.iterdir() if p.name.startswith(".hf-cache")]
    check_lengths(manifest, [by_key[(row["task_id"], row["attempt"])] for row in rows], r.out)


async def test_hf_push_needs_a_token_and_reports_hub_errors_in_one_line(filled: Filled, tmp_path: Path) -> None:
    no_token = await export(filled, "hf", "--out", str(tmp_path / "a"), "--push", "me/gymforge-sft",
                            env={"HF_TOKEN": "", "GYMFORGE_HF_TOKEN": ""})
    assert no_token.code == 2 and no_token.err.startswith("gymforge: --push needs a Hugging Face token")
    assert len(no_token.err.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    # With a token the push goes to the configured endpoint: here a closed local port (no test reaches the Hub).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    r = await export(filled, "hf", "--out", str(tmp_path / "b"), "--push", "me/gymforge-sft",
                     env={"HF_TOKEN": "hf_test_not_a_real_token", "GYMFORGE_HF_ENDPOINT": endpoint})
    assert r.code == 2, r
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert r.err.startswith(f"gymforge: push to me/gymforge-sft at {endpoint} failed") and "hf_test_" not in r.err
    saved = datasets.load_from_disk(str(tmp_path / "b"))  # saved before the push
    assert saved["train"].num_rows == 5 and saved["test"].num_rows == 0  # (no fixture dataset hashes under 0.1)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["pushed_to"] is None


# --- bad input -----------------------------------------------------------------------------------


async def test_bad_input_is_one_line(filled: Filled, tmp_path: Path) -> None:
    empty = tmp_path / "nodata"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    cases: list[tuple[list[str], Path | None, str]] = [
        (["sft", "--out", str(tmp_path / "o1")], empty, "no store at "),
        (["traj", "--out", str(tmp_path / "o2")], empty, "no store at "),
        (["hf", "--out", str(tmp_path / "o3")], empty, "no store at "),
        (["sft", "--out", str(tmp_path / "o4"), "--task", "nope"], None, "unknown task nope"),
        (["traj", "--out", str(tmp_path / "o5"), "--task", "nope"], None, "unknown task nope"),
        (["sft", "--out", str(tmp_path / "o6"), "--task", "no-trajectories"], None, "no accepted trajectories for"),
        (["hf", "--out", str(tmp_path / "o7"), "--task", "no-trajectories", "--status", "all"], None,
         "no trajectories for"),
        (["sft", "--out", str(full)], None, "is not empty"),
        (["hf", "--out", str(full)], None, "is not empty"),
        (["sft", "--out", str(tmp_path / "o8"), "--max-tokens", "0"], None, "--max-tokens must be"),
        (["hf", "--out", str(tmp_path / "o9"), "--test-share", "1.5"], None, "--test-share must be"),
        (["sft", "--out", str(tmp_path / "o10"), "--format", "alpaca"], None, "invalid choice"),
    ]
    results = await asyncio.gather(*(
        gymforge("export", *args, url=OFFLINE, data_dir=data_dir or filled.data_dir, timeout=120)
        for args, data_dir, _ in cases))
    for (args, _, message), r in zip(cases, results, strict=True):
        assert r.code == 2, (args, r)
        assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("gymforge: "), (args, r.err)
        assert message in r.err and "Traceback" not in r.err, (args, r.err)
    for i in range(1, 11):
        assert not (tmp_path / f"o{i}").exists()
    assert sorted(p.name for p in full.iterdir()) == ["keep"]


async def test_force_replaces_an_earlier_export(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert (await export(filled, "sft", "--out", str(out), "--task", "cars-mpg")).code == 0
    assert (await export(filled, "sft", "--out", str(out), "--force", "--format", "openai")).code == 0
    assert (out / "metadata.jsonl").exists()
    r = await export(filled, "sft", "--out", str(out), "--force", "--task", "co2-forecast")
    assert r.code == 0, r.err
    assert [x["metadata"]["task_id"] for x in jsonl(out / "train.jsonl")] == ["co2-forecast"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl"]


# --- the converter on its own ----------------------------------------------------------------------


TRAIN_LOG = "epoch loss acc\n" * 500  # ~1,900 estimated tokens of output per training turn


def episode(steps: list[tuple[str, str, str, float | None]], score: float | None = 0.7,
            exit_status: str = "submitted") -> Trajectory:
    return make_trajectory("reg-long", 0, steps, score=score, exit_status=exit_status)


def training(n: int) -> list[tuple[str, str, str, float | None]]:
    return [("Look around.", "ls", "baseline.py\ndata\nevaluate.py", None)] + [
        (f"Train variant {i}.", f"python train.py --variant {i}", TRAIN_LOG, None) for i in range(n)]


def submitting(thought: str = "Better than the baseline: submit.") -> list[tuple[str, str, str, float | None]]:
    scored = validate_observation(0.5, 0.7, "accuracy")
    return [("Check.", "validate", scored, 0.7), (thought, "submit", scored, 0.7)]


def full_of(traj: Trajectory) -> list[dict[str, Any]]:
    return expected_messages(traj.model_dump(mode="json"))


def test_truncation_drops_the_oldest_middle_turns_and_keeps_the_submit_turn() -> None:
    traj = episode(training(8) + submitting())
    full = full_of(traj)
    turn = conversation_tokens(full[4:6])  # one training turn
    assert conversation_tokens(full) > 8 * turn
    limit = conversation_tokens(full[:2]) + 40 + conversation_tokens(full[-3:]) + turn * 5 // 2
    conv = sft_format.conversation(traj, limit)
    assert conv.truncated and conv.dropped_turns == 7  # ls and the 6 oldest training turns: 2 still fit
    assert check_truncation(conv.messages, full, limit) == 7
    assert "[7 earlier turns of this episode" in conv.messages[1]["content"]
    assert [command(m) for m in conv.messages[2::2]] == ["python train.py --variant 6", "python train.py --variant 7",
                                                         "validate", "submit"]
    assert conv.messages[-1]["content"] == full[-1]["content"]  # the submit reply, whole
    assert conv.tokens == conversation_tokens(conv.messages) <= limit
    whole = sft_format.conversation(traj, conversation_tokens(full))
    assert not whole.truncated and whole.messages == full  # it fits: nothing dropped, no note


def test_the_smallest_limit_keeps_only_system_task_and_the_final_submit_turn_else_skips() -> None:
    traj = episode(training(3) + submitting())  # ls, 3 training turns, validate, submit
    full = full_of(traj)
    note = "\n\n[5 earlier turns of this episode (a command and its output each) left out to fit the length limit]"
    least = conversation_tokens([full[0], {**full[1], "content": full[1]["content"] + note}, *full[-1:]])
    conv = sft_format.conversation(traj, least)
    assert check_truncation(conv.messages, full, least) == 5 and conv.messages[2:] == full[-1:]
    with pytest.raises(sft_format.Unusable) as exc:
        sft_format.conversation(traj, least - 1)
    assert exc.value.reason == sft_format.TOO_LONG
    assert str(exc.value) == (f"the system prompt, the task and the 1 final turn(s) kept whole need {least} "
                              f"estimated tokens, over the limit of {least - 1}")


def test_a_submit_turn_too_long_for_the_limit_is_skipped_and_counted() -> None:
    traj = episode(training(2) + submitting("Submit. What I tried: " + "a larger forest; " * 2000))
    full = full_of(traj)
    assert conversation_tokens(full[-1:]) > 8000
    skipped = Skipped()
    row = {"task_id": "reg-long", "attempt": 0, "status": "accepted"}
    assert example_of(row, traj, 8000, skipped) is None
    assert skipped.counts == {"too_long": 1} and skipped.ids == ["reg-long__0: too_long"]
    ex = example_of(row, traj, conversation_tokens(full), skipped)
    assert ex is not None and not ex.metadata["truncated"] and ex.messages == full
    for fmt in ("trl", "openai"):
        line, _ = sft_line(ex, fmt)
        check_conversation(line["messages"], conversation_tokens(full))


def test_the_final_turns_run_from_the_last_submit_or_are_the_last_turn() -> None:
    # a submit that could not be scored, then more work, and the autosubmit at the step limit
    late = episode(training(4) + [("Submit.", "submit", "Your submission could not be scored: no file", None),
                                  ("Write it.", "python predict.py", "(no output)", None)],
                   exit_status="submitted (exit_cost)")
    full = full_of(late)
    conv = sft_format.conversation(late, conversation_tokens(full[:2] + full[-3:]) + 40)
    assert [command(m) for m in conv.messages[2::2]] == ["submit", "python predict.py"]
    assert conv.dropped_turns == 5 and conv.messages[-2:] == full[-2:]
    with pytest.raises(sft_format.Unusable, match="the 2 final turn"):  # room for the last turn, not the submit's
        sft_format.conversation(late, conversation_tokens(full[:2] + full[-1:]) + 40)
    # no submit at all (the step limit, nothing to autosubmit): the last turn is kept
    unsubmitted = episode(training(4), score=None, exit_status="exit_cost")
    full = full_of(unsubmitted)
    conv = sft_format.conversation(unsubmitted, conversation_tokens(full[:2] + full[-1:]) + 40)
    assert [command(m) for m in conv.messages[2::2]] == ["python train.py --variant 3"]
    assert conv.dropped_turns == 4 and conv.messages[-1] == full[-1]
    check_conversation(conv.messages, conv.tokens)


def test_malformed_histories_are_refused() -> None:
    system, user = {"role": "system", "content": "s"}, {"role": "user", "content": "u"}
    reply = {"role": "assistant", "content": "THOUGHT: x\n\n```bash\nls\n```\n"}
    base = trajectory(ATTEMPTS[2], "r2", "maximize", 0.62)

    def stored(history: list[dict[str, Any]] | None) -> Trajectory:  # as the exports read it back
        return sft_format.parse(json.dumps({**base, "history": history}))

    for history in ([], [user, reply], [system, user], [system, user, reply, reply], None):
        with pytest.raises(sft_format.Unusable) as exc:
            sft_format.messages_of(stored(history))
        assert exc.value.reason == sft_format.MALFORMED
    turn = [system, user, reply, user]
    assert sft_format.messages_of(stored(turn)) == turn[:3]  # the final observation teaches nothing: left out
    assert sft_format.messages_of(stored([*turn, reply])) == [*turn, reply]  # the final reply ends it
    assert sft_format.messages_of(stored([system, user, reply])) == [system, user, reply]


# Qwen2.5's chat template renders an assistant tool call like this (its tool-call branch, condensed): the
# template serialises `arguments` itself, as Llama-3.1's and gpt-oss's do.
QWEN25_TOOL_CALL = ('{%- for tool_call in message.tool_calls %}{%- set tool_call = tool_call.function %}'
                    '{{- \'\\n<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
                    '{{- tool_call.arguments | tojson }}{{- \'}\\n</tool_call>\' }}{%- endfor %}')


def test_trl_arguments_render_once_in_a_chat_template_and_openai_keeps_json_text() -> None:
    import jinja2

    traj = sft_format.parse(json.dumps(trajectory(ATTEMPTS[0], "rmse", "minimize", 2.4)))  # tool-call mode
    template = jinja2.Environment().from_string(QWEN25_TOOL_CALL)

    def rendered(arguments: str) -> list[Any]:
        conv = sft_format.conversation(traj, 32_000, arguments=arguments)
        calls = [template.render(message=m) for m in conv.messages if m.get("tool_calls")]
        return [json.loads(c.strip().removeprefix("<tool_call>").removesuffix("</tool_call>"))["arguments"]
                for c in calls]

    commands = [{"command": s.command} for s in ATTEMPTS[0].steps]
    assert rendered("object") == commands  # what the model is trained to emit: the object, encoded once
    assert rendered("string") == [json.dumps(c) for c in commands]  # a string would be trained double-encoded
    with pytest.raises(ValueError, match="arguments must be one of"):
        sft_format.conversation(traj, 32_000, arguments="yaml")


def test_arguments_objects_come_from_any_recorded_form() -> None:
    for recorded in ({"command": "ls -la"}, '{"command": "ls -la"}', json.dumps('{"command": "ls -la"}')):
        call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": recorded}}
        assert sft_format.tool_call(call, "ls -la", "object")["function"]["arguments"] == {"command": "ls -la"}
        assert json.loads(sft_format.tool_call(call, "ls -la", "string")["function"]["arguments"]) == \
            {"command": "ls -la"}
    garbled = {"id": "c1", "function": {"name": "bash", "arguments": "not json"}}  # the recorded action stands in
    assert sft_format.tool_call(garbled, "pwd", "object")["function"]["arguments"] == {"command": "pwd"}
    assert sft_format.tool_call(garbled, "pwd", "string")["function"]["arguments"] == '{"command": "pwd"}'
