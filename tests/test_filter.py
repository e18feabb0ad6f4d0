"""The filter: its pure rules in every mode and direction, then the agent on a real nats-server with the
sink's SQLite store — verdicts, duplicates across replicas, redelivery and the one `task.graded`."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from nats.js.kv import VALID_KEY_RE

import prompts
from agents.filter import BUCKET, FilterAgent, graded_id
from agents.filter_rules import (
    MODES,
    duplicate_reason,
    gain,
    grade,
    key_token,
    record,
    signature,
    verdict,
)
from agents.runtime import AgentContext, AgentRunner, Emit, Supervisor
from bus import Bus, BusSettings, EmbeddedNats, Envelope, make_envelope, subject_for
from bus.codec import validate_payload
from domain.payloads import PAYLOADS, TaskGraded, TrajectoryAccepted, TrajectoryCompleted, TrajectoryRejected
from domain.tokens import conversation_tokens
from domain.trajectory import Trajectory
from gymforge import config
from gymforge.errors import UserError
from store.db import Store
from tests.helpers.trajectories import make_trajectory
from tests.test_runtime import wait_for_acked, wait_until_count

# --- realistic trajectories (the contract's SWE-agent .traj shape) ---------------------------


def step(i: int, action: str, score: float | None = None) -> dict[str, Any]:
    thought = f"Step {i}: next I run `{action.splitlines()[0]}`."
    observation = (f"Your code produced a valid submission artefact at submission.csv.\nBaseline Score: "
                   f"{{\"rmse\": 1.0}}\nEvaluation Score: {{\"rmse\": {score}}}" if score is not None else "(no output)")
    return {
        "response": f"THOUGHT: {thought}\n\n```bash\n{action}\n```\n", "thought": thought, "action": action,
        "observation": observation, "execution_time": 0.4 + i,
        "state": {"step": i, "score": score},
        "query": [{"role": "user", "content": observation}],
        "extra_info": {"format_corrections": [], "tool_call_id": None},
    }


def trajectory(task_id: str, attempt: int, actions: list[str], score: float | None, *,
               baseline: float = 1.0, direction: str = "minimize", exit_status: str = "submitted",
               padding: int = 0) -> dict[str, Any]:
    steps = [step(i, a, score if a in ("validate", "submit") else None) for i, a in enumerate(actions)]
    facts = {"task_id": task_id, "task_type": "tabular_regression", "metric": "rmse", "direction": direction,
             "baseline_score": baseline, "training_timeout": 300}
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an ML engineer working in a shell.", "message_type": "system_prompt",
         "agent": "solver"},
        {"role": "user", "content": f"Solve the task.\n```json\n{json.dumps(facts)}\n```\n" + "x" * padding,
         "message_type": "observation", "agent": "solver"},
    ]
    for s in steps:
        history += [
            {"role": "assistant", "content": s["response"], "message_type": "action", "agent": "solver",
             "thought": s["thought"], "action": s["action"]},
            {"role": "user", "content": s["observation"], "message_type": "observation", "agent": "solver"},
        ]
    info = {
        "exit_status": exit_status, "exit_detail": "", "submission": "submission.csv" if score is not None else None,
        "score": score, "metrics": {"rmse": score} if score is not None else None, "baseline_score": baseline,
        "metric": "rmse", "direction": direction, "validate_scores": [score] if score is not None else [],
        "context_tokens": conversation_tokens(history),
        "model_stats": {"instance_cost": 0.0, "tokens_sent": 1000, "tokens_received": 200, "api_calls": len(steps)},
        "task_id": task_id, "attempt": attempt, "model": "teacher",
    }
    replay = {"action_format": "thought_action", "seed": attempt, "limits": {"steps": 30}, "model": "teacher"}
    return {"environment": "gymforge:bwrap", "trajectory": steps, "history": history, "info": info,
            "replay_config": replay}


def completed(task_id: str, attempt: int, actions: list[str], score: float | None, *, attempts_total: int = 3,
              baseline: float = 1.0, direction: str = "minimize", submitted: bool = True,
              exit_status: str = "submitted", padding: int = 0) -> TrajectoryCompleted:
    traj = trajectory(task_id, attempt, actions, score, baseline=baseline, direction=direction,
                      exit_status=exit_status, padding=padding)
    return TrajectoryCompleted(
        task_id=task_id, attempt=attempt, attempts_total=attempts_total, exit_status=exit_status,
        submitted=submitted, score=score, baseline_score=baseline, metric="rmse", direction=direction,
        validate_scores=traj["info"]["validate_scores"], tokens=conversation_tokens(traj["history"]),
        steps=len(actions), trajectory=traj,
    )


PLAN_A = ["cat baseline.py", "python train.py  --model gbm", "validate", "submit"]
PLAN_A_SPACED = ["cat   baseline.py", "python train.py --model  gbm\n", "validate", " submit"]
PLAN_B = ["ls data", "python baseline.py", "submit"]


def scored(score: float, direction: str = "maximize", baseline: float = 0.5, **kw: Any) -> TrajectoryCompleted:
    return completed("t1", 0, PLAN_A, score, baseline=baseline, direction=direction, **kw)


# --- pure rules --------------------------------------------------------------------------------


def test_no_valid_submission_is_rejected_in_every_mode() -> None:
    for mode in ("beat", "match", "any"):
        unsubmitted = completed("t1", 0, ["ls"], None, submitted=False, exit_status="exit_cost")
        v = verdict(unsubmitted, mode)
        assert not v.solved and v.reasons == ["no valid submission (exit status exit_cost)"]
        unscored = completed("t1", 0, ["submit"], None)
        assert verdict(unscored, mode).reasons == ["no valid submission (the submission was not scored)"]
        nan = completed("t1", 0, ["submit"], math.nan)
        assert not verdict(nan, mode).solved


@pytest.mark.parametrize(("direction", "better", "worse"), [("maximize", 0.9, 0.2), ("minimize", 0.2, 0.9)])
def test_beat_needs_a_strictly_better_score(direction: str, better: float, worse: float) -> None:
    v = verdict(scored(better, direction), "beat")
    assert v.solved and v.reasons == []
    for score in (0.5, worse):  # a tie does not beat
        v = verdict(scored(score, direction), "beat")
        assert not v.solved
        assert v.reasons == [f"score {score:.6g} does not beat the baseline 0.5 (rmse, {direction})"]


@pytest.mark.parametrize(("direction", "better", "worse"), [("maximize", 0.9, 0.2), ("minimize", 0.2, 0.9)])
def test_match_accepts_a_tie_and_rejects_worse(direction: str, better: float, worse: float) -> None:
    for score in (better, 0.5):
        v = verdict(scored(score, direction), "match")
        assert v.solved and v.reasons == []
    v = verdict(scored(worse, direction), "match")
    assert not v.solved and v.reasons == [f"score {worse:.6g} is worse than the baseline 0.5 (rmse, {direction})"]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_any_and_valid_need_only_a_scored_submission(direction: str) -> None:
    for mode in ("any", "valid"):
        for score in (0.0, 0.5, 1.0):
            v = verdict(scored(score, direction), mode)
            assert v.solved and v.reasons == [] and v.score == score


# --- "valid": the paper's rule, any validate or submit that produced a score -----------------------


def scored_text(score: float) -> str:
    return prompts.render("solver_validate", error=None, baseline={"rmse": 1.0}, metrics={"rmse": score})


UNSCORED = prompts.render("solver_validate", error="submission.csv not found", baseline={}, metrics={})


def episode(steps: list[tuple[str, str, str, float | None]], *, score: float | None = None,
            exit_status: str = "exit_cost") -> TrajectoryCompleted:
    """A trajectory.completed as the solver sends it, around a trajectory recorded step by step
    (baseline rmse 1.0, minimised); `score` is the final submission's, None when it was not scored."""
    traj = make_trajectory("reg-v", 0, steps, score=score, exit_status=exit_status, metric="rmse",
                           direction="minimize", baseline=1.0)
    return TrajectoryCompleted(
        task_id="reg-v", attempt=0, attempts_total=1, exit_status=exit_status, submitted=score is not None,
        score=score, baseline_score=1.0, metric="rmse", direction="minimize",
        validate_scores=traj.info.validate_scores, tokens=traj.info.context_tokens,
        steps=len(traj.trajectory), trajectory=traj)


TRAIN = ("Train a first model.", "python train.py", "(no output)", None)
# validate scored 1.2 (worse than the baseline 1.0), then submission.csv was lost: the submit was not scored,
# the step limit ended the episode and its autosubmit found nothing to score
FAILED_FINAL_SUBMIT = [TRAIN, ("Check it.", "validate", scored_text(1.2), 1.2),
                       ("Clean up.", "rm -rf submission.csv outputs", "(no output)", None),
                       ("Submit.", "submit", UNSCORED, None)]


def test_valid_keeps_an_earlier_validate_score_when_the_final_submit_failed() -> None:
    c = episode(FAILED_FINAL_SUBMIT)
    assert (c.submitted, c.score, c.validate_scores) == (False, None, [1.2])
    v = verdict(c, "valid")
    assert v.solved and v.reasons == [] and v.score == 1.2
    for mode in ("beat", "match", "any"):
        v = verdict(c, mode)
        assert not v.solved and v.score is None
        assert v.reasons == [f"no valid submission (exit status exit_cost; a validate scored 1.2, but {mode} "
                             "judges the final submission)"]


def test_valid_judges_the_final_submission_first_then_the_last_validate() -> None:
    both = episode([TRAIN, ("Check.", "validate", scored_text(0.8), 0.8),
                    ("Submit.", "submit", scored_text(1.3), 1.3)], score=1.3, exit_status="submitted")
    assert verdict(both, "valid").score == 1.3 and verdict(both, "valid").reasons == []
    assert verdict(both, "beat").reasons == ["score 1.3 does not beat the baseline 1 (rmse, minimize)"]
    two = episode([("Check.", "validate", scored_text(0.8), 0.8), ("Again.", "validate", UNSCORED, None),
                   ("Check again.", "validate", scored_text(0.9), 0.9),
                   ("Submit.", "submit", UNSCORED, None)])
    assert two.validate_scores == [0.8, None, 0.9] and verdict(two, "valid").score == 0.9


@pytest.mark.parametrize("mode", MODES)
def test_no_valid_score_at_all_is_rejected_by_every_mode(mode: str) -> None:
    c = episode([TRAIN, ("Check it.", "validate", UNSCORED, None), ("Submit.", "submit", UNSCORED, None)])
    assert c.validate_scores == [None]
    v = verdict(c, mode)
    assert not v.solved and v.score is None
    want = ("no valid score: no validate or submit produced one (exit status exit_cost)" if mode == "valid"
            else "no valid submission (exit status exit_cost)")
    assert v.reasons == [want]


async def test_valid_mode_accepts_and_grades_with_the_validate_score(bus: Bus, data_dir: Path) -> None:
    agent = FilterAgent(AgentContext(bus=bus, data_dir=data_dir), FilterAgent.Settings(mode="valid"))
    await agent.start()
    out = await handled(agent, envelope(episode(FAILED_FINAL_SUBMIT)))
    assert [e.type for e in out] == ["trajectory.accepted", "task.graded"]
    accepted, graded = out[0].payload, out[1].payload
    assert isinstance(accepted, TrajectoryAccepted) and isinstance(graded, TaskGraded)
    assert accepted.score == 1.2 and accepted.gain == pytest.approx(-0.2)  # worse than the baseline: still kept
    assert (graded.solve_rate, graded.best_score, graded.accepted) == (1.0, 1.2, 1)
    beat = FilterAgent(AgentContext(bus=bus, data_dir=data_dir), FilterAgent.Settings(mode="beat"))
    c = episode(FAILED_FINAL_SUBMIT).model_copy(update={"task_id": "reg-v2"})
    await beat.start()
    [rejected, regraded] = [e.payload for e in await handled(beat, envelope(c))]
    assert isinstance(rejected, TrajectoryRejected) and isinstance(regraded, TaskGraded)
    assert regraded.solve_rate == 0.0 and regraded.best_score is None
    assert rejected.reasons == ["no valid submission (exit status exit_cost; a validate scored 1.2, but beat "
                                "judges the final submission)"]


def test_token_limit_rejects_but_does_not_unsolve() -> None:
    long = completed("t1", 0, PLAN_A, 0.1, padding=200_000)
    assert long.tokens > 48_000
    v = verdict(long, "beat")
    assert v.solved and v.reasons == [f"too long: {long.tokens} tokens, over the limit of 48000"]
    short = completed("t1", 0, PLAN_A, 0.1)
    assert verdict(short, "beat", max_tokens=short.tokens).reasons == []  # at the limit is fine
    assert verdict(short, "beat", max_tokens=short.tokens - 1).reasons[0].startswith("too long")
    both = verdict(completed("t1", 0, PLAN_A, 2.0, padding=200_000), "beat")
    assert not both.solved and len(both.reasons) == 2


def trajectory_model(task_id: str, attempt: int, actions: list[str], score: float | None) -> Trajectory:
    return Trajectory.model_validate(trajectory(task_id, attempt, actions, score))


def test_signature_ignores_whitespace_but_not_actions_or_order() -> None:
    a = trajectory_model("t1", 0, PLAN_A, 0.1)
    assert signature(a) == signature(trajectory_model("t1", 1, PLAN_A_SPACED, 0.3))
    assert signature(a) != signature(trajectory_model("t1", 1, PLAN_B, 0.1))
    assert signature(a) != signature(trajectory_model("t1", 1, list(reversed(PLAN_A)), 0.1))
    assert signature(a) != signature(trajectory_model("t1", 1, ["cat baseline.py python train.py --model gbm",
                                                                "validate", "submit"], 0.1))


def test_gain_is_positive_when_better_in_either_direction() -> None:
    assert gain(0.9, 0.5, "maximize") == pytest.approx(0.4)
    assert gain(0.2, 0.5, "minimize") == pytest.approx(0.3)
    assert gain(0.9, 0.5, "minimize") == pytest.approx(-0.4)


def test_key_tokens_are_valid_nats_keys_and_keep_distinct_ids_distinct() -> None:
    assert key_token("tabular_regression-abc123") == "tabular_regression-abc123"
    odd = ["task.v1", "task v1", "task_v1?", "tâche", "", "a.b"]
    tokens = [key_token(t) for t in odd]
    assert all(VALID_KEY_RE.match(f"dup.{t}.x") and "." not in t for t in tokens)
    assert len(set(tokens)) == len(odd)


def test_grading_waits_for_every_attempt_and_is_idempotent_per_attempt() -> None:
    c = [completed("t1", i, PLAN_A, s, attempts_total=3) for i, s in enumerate([0.8, 1.0, 0.6])]
    verdicts = [verdict(x) for x in c]
    state = record(None, c[0], verdicts[0], accepted=True)
    assert state is not None and grade(state) is None
    assert record(state, c[0], verdicts[0], accepted=False) is None  # a second verdict for attempt 0: ignored
    state = record(state, c[2], verdicts[2], accepted=False)
    assert state is not None and grade(state) is None
    state = record(state, c[1], verdicts[1], accepted=False)
    assert state is not None
    g = grade(state)
    assert g is not None
    assert (g.attempts, g.accepted, g.best_score, g.baseline_score) == (3, 1, 0.6, 1.0)
    assert g.solve_rate == pytest.approx(2 / 3) and g.gain == pytest.approx(0.4)


def test_grade_without_a_solved_attempt_has_no_best_or_gain() -> None:
    c = completed("t1", 0, PLAN_A, 0.3, attempts_total=1, direction="maximize", baseline=0.5)
    state = record(None, c, verdict(c), accepted=False)
    assert state is not None
    g = grade(state)
    assert g is not None and (g.solve_rate, g.best_score, g.gain, g.accepted) == (0.0, None, None, 0)


async def test_unknown_mode_is_refused(bus: Bus, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="filter_mode"):
        config.load({"filter_mode": "best"}, environ={})


# --- the agent on a real bus ---------------------------------------------------------------------


async def rows(db: Path, sql: str) -> list[dict]:
    store = await Store.open(db, readonly=True)
    try:
        return await store.rows(sql)
    finally:
        await store.close()


async def stream_count(bus: Bus, event_type: str) -> int:
    info = await bus.js.stream_info("GYMFORGE", subjects_filter=subject_for(event_type))
    return sum((info.state.subjects or {}).values())


def start(agents: list[FilterAgent], concurrency: int = 4) -> tuple[Supervisor, asyncio.Task]:
    sup = Supervisor([AgentRunner(a, concurrency=concurrency) for a in agents], grace_s=2)
    return sup, asyncio.create_task(sup.run())


def envelope(c: TrajectoryCompleted) -> Envelope:
    return make_envelope("trajectory.completed", c, producer="solver")


async def test_three_attempts_beat_tie_duplicate_then_one_grade(bus: Bus, data_dir: Path, sink: Path) -> None:
    agent = FilterAgent(AgentContext(bus=bus, data_dir=data_dir), FilterAgent.Settings(mode="beat"))
    sup, task = start([agent])
    first = envelope(completed("reg-1", 0, PLAN_A, 0.8))
    tie = envelope(completed("reg-1", 1, PLAN_B, 1.0))
    dup = envelope(completed("reg-1", 2, PLAN_A_SPACED, 0.6))  # better still, but the same actions
    try:
        await bus.publish(first)
        await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories WHERE status='accepted'", 1, timeout=30)
        await bus.publish(tie)
        await bus.publish(dup)
        await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type='task.graded'", 1, timeout=30)
        await wait_for_acked(bus, "filter", timeout=30)
        await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories WHERE status='rejected'", 2, timeout=30)
    finally:
        sup.request_stop()
        await task
    by_attempt = {r["attempt"]: r for r in await rows(sink, "SELECT * FROM trajectories")}
    assert by_attempt[0]["status"] == "accepted" and by_attempt[0]["gain"] == pytest.approx(0.2)
    assert by_attempt[1]["status"] == "rejected"
    assert by_attempt[1]["reasons"] == "score 1 does not beat the baseline 1 (rmse, minimize)"
    assert by_attempt[2]["status"] == "rejected"
    assert by_attempt[2]["reasons"] == duplicate_reason(0, first.id)
    assert by_attempt[2]["id"] == dup.id and by_attempt[2]["traj"]
    ledger = await rows(sink, "SELECT id, payload FROM ledger WHERE type='task.graded'")
    assert [r["id"] for r in ledger] == [graded_id("reg-1")]
    assert await stream_count(bus, "task.graded") == 1
    [graded] = await rows(sink, "SELECT * FROM tasks WHERE task_id='reg-1'")
    assert graded["status"] == "graded" and (graded["attempts"], graded["accepted"]) == (3, 1)
    assert graded["solve_rate"] == pytest.approx(2 / 3)  # the tie is unsolved; the duplicate is solved
    assert graded["best_score"] == pytest.approx(0.6) and graded["gain"] == pytest.approx(0.4)
    assert graded["baseline_score"] == 1.0


async def test_the_same_event_twice_gives_one_verdict_and_one_grade(bus: Bus, data_dir: Path, sink: Path) -> None:
    agent = FilterAgent(AgentContext(bus=bus, data_dir=data_dir))
    sup, task = start([agent], concurrency=1)
    events = [envelope(completed("reg-2", i, p, 0.7, attempts_total=2)) for i, p in enumerate([PLAN_A, PLAN_B])]
    try:
        for e in events:
            await bus.publish(e)
        await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type='task.graded'", 1, timeout=30)
        # both events again under other message ids: JetStream delivers them, the filter handles them again
        for e in events:
            await bus.publish(e, msg_id=e.id + "-again")
        await wait_for_acked(bus, "filter", timeout=30)
        info = await bus.js.consumer_info("GYMFORGE", "filter")
        assert info.delivered.consumer_seq == 4
    finally:
        sup.request_stop()
        await task
    assert await stream_count(bus, "trajectory.completed") == 4
    assert await stream_count(bus, "trajectory.accepted") == 2  # the repeats' outputs are deduplicated
    assert await stream_count(bus, "trajectory.rejected") == 0
    assert await stream_count(bus, "task.graded") == 1
    verdicts = await rows(sink, "SELECT attempt, status FROM trajectories ORDER BY attempt")
    assert [(v["attempt"], v["status"]) for v in verdicts] == [(0, "accepted"), (1, "accepted")]
    [graded] = await rows(sink, "SELECT * FROM tasks WHERE task_id='reg-2'")
    assert (graded["attempts"], graded["accepted"], graded["solve_rate"]) == (2, 2, 1.0)


async def handled(agent: FilterAgent, env: Envelope) -> list[Emit]:
    return list(await agent.handle(validate_payload(env, PAYLOADS)))


async def test_redelivery_after_a_crash_keeps_the_claim_and_the_verdict(bus: Bus, data_dir: Path) -> None:
    agent = FilterAgent(AgentContext(bus=bus, data_dir=data_dir))
    await agent.start()
    first, second = (envelope(completed("reg-3", i, PLAN_A, 0.5, attempts_total=2)) for i in range(2))
    once = await handled(agent, first)
    again = await handled(agent, first)  # its claim is its own: still accepted, not a duplicate of itself
    assert [(e.type, e.payload) for e in once] == [(e.type, e.payload) for e in again]
    assert [e.type for e in once] == ["trajectory.accepted"]
    graded_once = await handled(agent, second)
    graded_again = await handled(agent, second)
    for out in (graded_once, graded_again):
        assert [e.type for e in out] == ["trajectory.rejected", "task.graded"]
        assert out[1].event_id == graded_id("reg-3")
        assert out[0].payload.reasons == [duplicate_reason(0, first.id)]  # type: ignore[attr-defined]
    assert graded_once[1].payload == graded_again[1].payload
    kv = await bus.js.key_value(BUCKET)
    state = json.loads((await kv.get("task.reg-3")).value)
    assert set(state["verdicts"]) == {"0", "1"}
    assert state["verdicts"]["1"] == {"solved": True, "accepted": False, "score": 0.5}


async def test_two_replicas_racing_on_duplicates_accept_one(
    nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path
) -> None:
    other = await Bus.connect(BusSettings(url=nats_server.url), types=PAYLOADS)
    n = 8
    events = [envelope(completed("reg-4", i, PLAN_A if i % 2 else PLAN_A_SPACED, 0.9, attempts_total=n))
              for i in range(n)]
    try:
        # the race itself, deterministic: two replicas (own connections) judge the duplicates at once
        a = FilterAgent(AgentContext(bus=bus, data_dir=data_dir))
        b = FilterAgent(AgentContext(bus=other, data_dir=data_dir))
        await asyncio.gather(a.start(), b.start())
        outs = await asyncio.gather(*(
            handled(a if i % 2 else b, e) for i, e in enumerate(events)))
        assert sum(1 for out in outs if out[0].type == "trajectory.accepted") == 1
        assert sum(1 for out in outs if len(out) == 2 and out[1].type == "task.graded") >= 1
        grades = [out[1].payload for out in outs if len(out) == 2]
        assert len({g.model_dump_json() for g in grades}) == 1  # whoever completes the task grades it alike
        g = grades[0]
        assert (g.accepted, g.attempts, g.solve_rate) == (1, n, 1.0)  # type: ignore[attr-defined]

        # and through the bus: two replicas sharing the durable consumer, over a second task
        events = [envelope(completed("reg-5", i, PLAN_A, 0.9, attempts_total=n)) for i in range(n)]
        sup, task = start([FilterAgent(AgentContext(bus=bus, data_dir=data_dir)),
                           FilterAgent(AgentContext(bus=other, data_dir=data_dir))], concurrency=2)
        try:
            await asyncio.gather(*(bus.publish(e) for e in events))
            await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type='task.graded'", 1, timeout=30)
            await wait_for_acked(bus, "filter", timeout=30)
            await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories WHERE status IN "
                                         "('accepted','rejected')", n, timeout=30)
        finally:
            sup.request_stop()
            await task
    finally:
        await other.close()
    verdicts = await rows(sink, "SELECT status, reasons FROM trajectories WHERE task_id='reg-5'")
    assert sorted(v["status"] for v in verdicts) == ["accepted"] + ["rejected"] * (n - 1)
    assert all("duplicate of accepted attempt" in v["reasons"] for v in verdicts if v["status"] == "rejected")
    [graded] = await rows(sink, "SELECT * FROM tasks WHERE task_id='reg-5'")
    assert (graded["accepted"], graded["attempts"], graded["solve_rate"]) == (1, n, 1.0)
    assert graded["gain"] == pytest.approx(0.1)
