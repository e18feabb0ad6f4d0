"""The typed trajectory (domain.trajectory) keeps SWE-agent's .traj JSON exactly as the solver wrote it as a
plain dict: scripted episodes run through the real loop, recorded at once by the Recorder and by the dict
recorder it replaced (kept below as the reference, as it was), must give the same JSON text; a dump
validates back to the same dump; a stored trajectory of the older hand-written kind loads unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pydantic import ValidationError

from agents.llm import Completion
from agents.solver.actions import Action
from agents.solver.loop import Episode, EpisodeLimits, Output, Scored, ScoreError
from agents.solver.record import Recorder, Step
from domain.payloads import TrajectoryCompleted
from domain.tokens import conversation_tokens
from domain.trajectory import HistoryMessage, Trajectory
from tests.helpers.scripted_model import ScriptedModel, bash, tool_call
from tests.helpers.trajectories import make_trajectory

# --- the reference: the dict recorder as it was before the typed model -----------------------------

API_KEYS = ("role", "content", "tool_calls", "tool_call_id")


@dataclass
class LegacyModelStats:
    instance_cost: float = 0.0
    tokens_sent: int = 0
    tokens_received: int = 0
    api_calls: int = 0


def _legacy_msg(role: str, content: str, message_type: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "message_type": message_type, "agent": "solver", **extra}


@dataclass
class LegacyRecorder:
    system: str
    instance: str
    info: dict[str, Any]
    replay_config: dict[str, Any]
    environment: str
    tool_mode: bool = False
    stats: LegacyModelStats = field(default_factory=LegacyModelStats)
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    validate_scores: list[float | None] = field(default_factory=list)
    last_scored: Any = None
    pending_query: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.history = [_legacy_msg("system", self.system, "system_prompt"),
                        _legacy_msg("user", self.instance, "observation")]
        self.pending_query = list(self.history)

    def messages(self) -> list[dict[str, Any]]:
        return [{k: m[k] for k in API_KEYS if k in m} for m in self.history]

    def count_call(self, reply: Completion) -> None:
        self.stats.api_calls += 1
        self.stats.tokens_sent += reply.prompt_tokens
        self.stats.tokens_received += reply.completion_tokens
        self.stats.instance_cost += reply.cost_usd

    def add_step(self, step: Step) -> None:
        a = step.action
        assistant = _legacy_msg("assistant", step.reply.text, "action", thought=a.thought, action=a.command)
        if self.tool_mode:
            assistant["tool_calls"] = [c for c in step.reply.tool_calls if c.get("id") == a.tool_call_id][:1]
            observation = _legacy_msg("tool", step.observation, "observation", tool_call_id=a.tool_call_id)
        else:
            observation = _legacy_msg("user", step.observation, "observation")
        self.history += [assistant, observation]
        self.steps.append({
            "response": step.reply.text, "thought": a.thought, "action": a.command,
            "observation": step.observation, "execution_time": round(step.execution_time, 4),
            "state": {"step": len(self.steps) + 1, "score": step.score},
            "query": [{k: m[k] for k in API_KEYS if k in m} for m in self.pending_query],
            "extra_info": {"format_corrections": step.corrections, "tool_call_id": a.tool_call_id,
                           "model_time": round(step.model_time, 4)},
        })
        self.pending_query = [observation]

    def finish(self, exit_status: str, detail: str, *, submitted: bool) -> None:
        scored = self.last_scored if submitted else None
        self.info.update({
            "exit_status": exit_status, "exit_detail": detail,
            "submission": "submission.csv" if scored is not None else None,
            "score": scored.value if scored is not None else None,
            "metrics": scored.metrics if scored is not None else None,
            "validate_scores": self.validate_scores,
            "context_tokens": conversation_tokens(self.history),
            "model_stats": {"instance_cost": round(self.stats.instance_cost, 6), "tokens_sent": self.stats.tokens_sent,
                            "tokens_received": self.stats.tokens_received, "api_calls": self.stats.api_calls},
        })

    def traj(self) -> dict[str, Any]:
        return {"environment": self.environment, "trajectory": self.steps, "history": self.history,
                "info": self.info, "replay_config": self.replay_config}


@dataclass
class TwinRecorder(Recorder):
    """The Recorder, with every call the loop makes repeated on the reference recorder."""

    legacy: LegacyRecorder | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.legacy = LegacyRecorder(self.system, self.instance, dict(self.start), self.replay_config,
                                     self.environment, self.tool_mode)

    def count_call(self, reply: Completion) -> None:
        super().count_call(reply)
        assert self.legacy is not None
        self.legacy.count_call(reply)

    def add_step(self, step: Step) -> None:
        super().add_step(step)
        assert self.legacy is not None
        self.legacy.add_step(replace(step, corrections=[c.model_dump() for c in step.corrections]))

    def finish(self, exit_status: str, detail: str, *, submitted: bool) -> None:
        super().finish(exit_status, detail, submitted=submitted)
        assert self.legacy is not None
        self.legacy.validate_scores, self.legacy.last_scored = self.validate_scores, self.last_scored
        self.legacy.finish(exit_status, detail, submitted=submitted)


# --- scripted episodes without a sandbox ------------------------------------------------------------

METRICS = {"accuracy": 0.8125, "f1": 0.75}


class ScriptedEnvironment:
    """Commands print a line; scores come from a script (a message = the submission cannot be scored)."""

    def __init__(self, scores: list[float | str]) -> None:
        self.scores = list(scores)

    def timeout_for(self, command: str) -> float:
        return 30.0

    async def execute(self, command: str, timeout: float) -> Output:
        return Output(stdout=f"ran: {command}\n", stderr="warning: é\n" if "train" in command else "",
                      exit_code=0, duration_s=0.123456)

    async def score(self) -> Scored:
        nxt = self.scores.pop(0) if self.scores else "there is no submission.csv in the workspace"
        if isinstance(nxt, str):
            raise ScoreError(nxt)
        return Scored(metrics={**METRICS, "accuracy": nxt}, value=nxt)


START = {"task_id": "penguins-0001", "attempt": 3, "metric": "accuracy", "direction": "maximize",
         "baseline_score": 0.75, "model": "scripted"}
REPLAY = {"action_format": "thought_action", "seed": 3, "limits": {"max_steps": 8}, "model": "scripted"}


async def episode(replies: list[Any], scores: list[float | str], *, tool_mode: bool = False,
                  limits: EpisodeLimits | None = None) -> TwinRecorder:
    fmt = "tool_call" if tool_mode else "thought_action"
    rec = TwinRecorder("SYSTEM PROMPT", "The task: predict the species.", dict(START),
                       {**REPLAY, "action_format": fmt}, "gymforge:bwrap", tool_mode=tool_mode)
    model = ScriptedModel(replies, cost_per_call=0.0012345, repeat_last=False)
    await Episode(model, ScriptedEnvironment(scores), limits or EpisodeLimits(), rec, fmt,  # type: ignore[arg-type]
                  {"accuracy": 0.75}).run()
    return rec


EPISODES: dict[str, tuple[list[Any], list[float | str], bool, EpisodeLimits | None]] = {
    "thought_action, corrections, an unscorable validate, submitted": (
        ["Let me look around first.", bash("ls -la", "List the files."),
         "two\n```bash\nls\n```\n```bash\npwd\n```\n", bash("python train.py"),
         bash("validate", "Check it."), bash("validate"), bash("submit", "Submit.")],
        ["the submission has 3 rows, not 5", 0.8125, 0.8125], False, None),
    "thought_action, the step limit, autosubmitted": (
        [bash("python train.py"), bash("validate"), bash("cat log.txt")], [0.5, 0.625], False, EpisodeLimits(max_steps=3)),
    "thought_action, format errors only": (["no action"] * 5, [], False, EpisodeLimits(max_format_errors=3)),
    "tool_call, a correction, a call without an id, submitted": (
        [("Look first.", [tool_call("ls", "c1")]),
         ("Two at once.", [tool_call("ls", "c2"), tool_call("pwd", "c3")]),
         ("No id.", [{"type": "function", "function": {"name": "bash",
                                                       "arguments": json.dumps({"command": "python train.py"})}}]),
         ("Validate.", [tool_call("validate", "c5")]), ("Done.", [tool_call("submit", "c6")])],
        [0.875, 0.875], True, None),
    "tool_call, unscorable at the end": (
        [("Run.", [tool_call("python train.py", "c1")])] * 2, [], True, EpisodeLimits(max_steps=2)),
}


@pytest.mark.parametrize("name", list(EPISODES))
async def test_the_model_dumps_to_the_dict_the_solver_recorded(name: str) -> None:
    replies, scores, tool_mode, limits = EPISODES[name]
    rec = await episode(replies, scores, tool_mode=tool_mode, limits=limits)
    assert rec.legacy is not None
    traj = rec.traj()
    dumped, legacy = traj.model_dump(mode="json"), rec.legacy.traj()
    assert dumped == legacy
    # key order and None handling too: the JSON text is the same
    assert json.dumps(dumped) == json.dumps(legacy)
    assert json.dumps(dumped, indent=2, ensure_ascii=False) == json.dumps(legacy, indent=2, ensure_ascii=False)
    assert traj.model_dump_json() == json.dumps(legacy, separators=(",", ":"), ensure_ascii=False)
    # the loop sent the same messages and counted the same
    assert rec.messages() == rec.legacy.messages()
    assert rec.submitted == (legacy["info"]["submission"] is not None)


async def test_every_recorded_key_is_modelled_and_optional_keys_keep_their_presence() -> None:
    replies, scores, tool_mode, limits = EPISODES["tool_call, a correction, a call without an id, submitted"]
    rec = await episode(replies, scores, tool_mode=tool_mode, limits=limits)
    traj = rec.traj()
    dumped = traj.model_dump(mode="json")
    no_id = traj.history[5]  # the answer to the call without an id: the key is there, null
    assert no_id.role == "tool" and no_id.tool_call_id is None and "tool_call_id" in dumped["history"][5]
    assert "tool_calls" not in dumped["history"][0] and "thought" not in dumped["history"][3]
    assert dumped["trajectory"][0]["query"][0] == {"role": "system", "content": "SYSTEM PROMPT"}
    assert traj.trajectory[1].extra_info.format_corrections[0].problem.startswith("the reply makes 2 tool calls")
    assert traj.info.model_stats.api_calls == 5 and traj.info.model_stats.instance_cost == round(5 * 0.0012345, 6)


@pytest.mark.parametrize("name", list(EPISODES))
async def test_a_dump_validates_back_to_the_same_dump(name: str) -> None:
    replies, scores, tool_mode, limits = EPISODES[name]
    traj = (await episode(replies, scores, tool_mode=tool_mode, limits=limits)).traj()
    dumped = traj.model_dump(mode="json")
    again = Trajectory.model_validate(dumped)
    assert again == traj and again.model_dump(mode="json") == dumped
    text = json.dumps(dumped, ensure_ascii=False)
    from_text = Trajectory.model_validate_json(text)
    assert json.dumps(from_text.model_dump(mode="json"), ensure_ascii=False) == text
    assert Trajectory.model_validate_json(traj.model_dump_json()).model_dump_json() == traj.model_dump_json()


async def test_it_travels_inside_trajectory_completed_unchanged() -> None:
    rec = await episode(*EPISODES["thought_action, corrections, an unscorable validate, submitted"][:2])
    traj = rec.traj()
    payload = TrajectoryCompleted(
        task_id="penguins-0001", attempt=3, attempts_total=4, exit_status=traj.info.exit_status, submitted=True,
        score=traj.info.score, baseline_score=0.75, metric="accuracy", direction="maximize",
        validate_scores=traj.info.validate_scores, tokens=traj.info.context_tokens, steps=len(traj.trajectory),
        trajectory=traj)
    wire = payload.model_dump(mode="json")
    assert wire["trajectory"] == traj.model_dump(mode="json")
    assert TrajectoryCompleted.model_validate(wire).trajectory == traj


def hand_written() -> dict[str, Any]:
    """A stored trajectory of the older hand-written kind: no model_time, steps counted from 0, the query
    holding whole history messages, info keys in another order."""
    history = [
        {"role": "system", "content": "s", "message_type": "system_prompt", "agent": "solver"},
        {"role": "user", "content": "task", "message_type": "observation", "agent": "solver"},
        {"role": "assistant", "content": "THOUGHT: x\n\n```bash\nls\n```\n", "message_type": "action",
         "agent": "solver", "thought": "x", "action": "ls"},
        {"role": "user", "content": "a b", "message_type": "observation", "agent": "solver"},
    ]
    step = {"response": history[2]["content"], "thought": "x", "action": "ls", "observation": "a b",
            "execution_time": 0.4, "state": {"step": 0, "score": None}, "query": history[:2],
            "extra_info": {"format_corrections": [{"reply": "hm", "problem": "no fenced code block"}],
                           "tool_call_id": None}}
    info = {"exit_status": "exit_cost", "exit_detail": "", "submission": None, "score": None, "metrics": None,
            "baseline_score": 2.4, "metric": "rmse", "direction": "minimize", "validate_scores": [],
            "context_tokens": conversation_tokens(history),
            "model_stats": {"instance_cost": 0.0, "tokens_sent": 30, "tokens_received": 6, "api_calls": 1},
            "task_id": "co2-forecast", "attempt": 1, "model": "teacher"}
    return {"environment": "gymforge:bwrap", "trajectory": [step], "history": history, "info": info,
            "replay_config": {"action_format": "thought_action", "seed": 1}}


def test_an_older_stored_trajectory_loads_and_dumps_unchanged() -> None:
    stored = hand_written()
    traj = Trajectory.model_validate_json(json.dumps(stored))
    assert traj.model_dump(mode="json") == stored
    assert traj.trajectory[0].extra_info.model_time is None and traj.info.exit_status == "exit_cost"
    assert traj.trajectory[0].query[0].message_type == "system_prompt"


@pytest.mark.parametrize("change", [
    lambda t: t["info"].update(surprise=1),
    lambda t: t["trajectory"][0].update(surprise=1),
    lambda t: t["history"][0].update(surprise=1),
    lambda t: t["trajectory"][0]["extra_info"].update(surprise=1),
    lambda t: t["history"][2].update(role="function"),
    lambda t: t["info"].pop("exit_status"),
    lambda t: t.pop("replay_config"),
])
def test_unknown_keys_and_missing_fields_are_refused(change: Any) -> None:
    stored = hand_written()
    change(stored)
    with pytest.raises(ValidationError):
        Trajectory.model_validate(stored)


def test_replay_config_and_tool_calls_stay_free_form() -> None:
    stored = hand_written()
    stored["replay_config"]["anything"] = {"nested": [1, None]}
    stored["history"][2]["tool_calls"] = [{"id": "c", "type": "function", "extra": True,
                                           "function": {"name": "bash", "arguments": {"command": "ls"}}}]
    assert Trajectory.model_validate(stored).model_dump(mode="json") == stored


def test_the_helper_trajectory_is_valid_and_its_messages_are_chat_shaped() -> None:
    traj = make_trajectory("t", 0, [("Look.", "ls", "out", None), ("Check.", "validate", "ok", 0.9)], score=0.9)
    assert Trajectory.model_validate_json(traj.model_dump_json()) == traj
    assert [m.chat() for m in traj.trajectory[0].query] == [{"role": "system", "content": traj.history[0].content},
                                                           {"role": "user", "content": traj.history[1].content}]
    assert HistoryMessage(role="tool", content="x", tool_call_id=None).chat() == \
        {"role": "tool", "content": "x", "tool_call_id": None}


def test_a_recorder_before_finish_has_no_info() -> None:
    rec = Recorder("s", "i", dict(START), {}, "gymforge:bwrap")
    rec.add_step(Step(Completion(text="```bash\nls\n```", prompt_tokens=1, completion_tokens=1, cost_usd=0.0,
                                 latency_s=0.0, retries=0), Action("", "ls"), "out", 0.1, None, [], 0.0))
    assert not rec.submitted
    with pytest.raises(RuntimeError, match="not finished"):
        rec.traj()
