"""The solver's episode loop over a real task workspace in the bwrap sandbox, driven by a scripted
test model (deterministic replies): actions, observations, validate/submit, every limit's exit status,
format corrections, and the .traj record."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.solver.actions import FormatError, command_output, parse_action, shorten
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import Episode, EpisodeLimits
from agents.solver.record import Recorder
from agents.taskrun import open_workspace
from sandbox import get_backend
from tests.helpers.scripted_model import ScriptedModel, bash, tool_call
from tests.helpers.tasks import ReadyTask, build_task

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> ReadyTask:
    return build_task(tmp_path_factory.mktemp("solver-task"))


@pytest.fixture
async def env(task: ReadyTask, tmp_path: Path) -> AsyncIterator[SandboxEnvironment]:
    files = ["baseline.py", "evaluate.py", "sample_submission.csv"]
    ws = await open_workspace(get_backend("bwrap"), task.bundle, task.raw, tmp_path / "w", files=files)
    yield SandboxEnvironment(ws, command_timeout_s=20, training_timeout_s=task.bundle.training_timeout)
    await ws.close()


def recorder(task: ReadyTask, tool_mode: bool = False) -> Recorder:
    info = {"task_id": task.bundle.task_id, "attempt": 0, "metric": task.bundle.metric,
            "direction": task.bundle.direction, "baseline_score": task.baseline_score, "model": "scripted"}
    return Recorder("SYSTEM", "INSTANCE", info, {"seed": 0}, "gymforge:bwrap", tool_mode=tool_mode)


async def play(task: ReadyTask, env: SandboxEnvironment, model: ScriptedModel, limits: EpisodeLimits | None = None,
               action_format: str = "thought_action") -> Recorder:
    rec = recorder(task, tool_mode=action_format == "tool_call")
    baseline = {task.bundle.metric: task.baseline_score}
    return await Episode(model, env, limits or EpisodeLimits(), rec, action_format, baseline).run()  # type: ignore[arg-type]


# --- parsing and observations (pure) ------------------------------------------------------------


def test_one_fenced_block_is_the_action_and_the_rest_the_thought() -> None:
    a = parse_action("THOUGHT: list the files.\n\n```bash\nls -la\n```\n", [], "thought_action")
    assert (a.thought, a.command, a.special) == ("list the files.", "ls -la", None)
    assert parse_action("```\nvalidate\n```", [], "thought_action").special == "validate"
    # a python block is not an action: only shell-tagged (or untagged) blocks are
    with pytest.raises(FormatError, match="no command"):
        parse_action("Look:\n```python\nprint(1)\n```", [], "thought_action")
    with pytest.raises(FormatError, match="2 commands"):
        parse_action("```bash\nls\n```\nthen\n```bash\npwd\n```", [], "thought_action")
    with pytest.raises(FormatError, match="empty"):
        parse_action("```bash\n\n```", [], "thought_action")


def test_tool_calls_must_be_exactly_one_bash_call() -> None:
    a = parse_action("I list.", [tool_call("ls", "c1")], "tool_call")
    assert (a.command, a.tool_call_id) == ("ls", "c1")
    with pytest.raises(FormatError, match="calls no tool"):
        parse_action("no call", [], "tool_call")
    with pytest.raises(FormatError, match="2 tool calls"):
        parse_action("", [tool_call("ls", "a"), tool_call("pwd", "b")], "tool_call")
    bad = {"id": "x", "type": "function", "function": {"name": "bash", "arguments": "not json"}}
    with pytest.raises(FormatError, match="JSON"):
        parse_action("", [bad], "tool_call")


def test_long_output_keeps_head_and_tail_with_a_marker() -> None:
    text = "".join(f"line {i}\n" for i in range(5000))
    short = shorten(text, 1000)
    assert short.startswith("line 0\n") and short.endswith("line 4999\n")
    assert f"[... {len(text) - 1000} characters elided ...]" in short
    assert len(short) < 1100
    assert command_output("", "", 0, 100) == "(no output)"
    assert command_output("out\n", "err\n", 2, 100) == "out\nerr\n(exit code 2)"


# --- episodes in the sandbox --------------------------------------------------------------------


async def test_a_scripted_episode_runs_the_baseline_validates_and_submits(
        task: ReadyTask, env: SandboxEnvironment) -> None:
    model = ScriptedModel([bash("ls; ls data"), bash("python baseline.py"), bash("validate"), bash("submit")],
                          repeat_last=False)
    rec = await play(task, env, model)
    info = rec.info
    assert info.exit_status == "submitted" and rec.submitted
    assert info.score == pytest.approx(task.baseline_score)  # the baseline's own submission
    assert info.validate_scores == [pytest.approx(task.baseline_score)]
    assert "baseline.py" in rec.steps[0].observation and "train.csv" in rec.steps[0].observation
    assert "Evaluation Score:" in rec.steps[2].observation and "Baseline Score:" in rec.steps[2].observation
    # the agent never sees the hidden answers or the prepare script
    assert "prepare.py" not in rec.steps[0].observation
    traj = rec.traj().model_dump(mode="json")
    assert set(traj) == {"environment", "trajectory", "history", "info", "replay_config"}
    assert [m["role"] for m in traj["history"]] == ["system", "user"] + ["assistant", "user"] * 4
    assert traj["history"][2]["action"] == "ls; ls data" and traj["history"][2]["message_type"] == "action"
    assert info.model_stats.api_calls == 4 and info.model_stats.tokens_sent > 0
    assert traj["trajectory"][1]["query"] == [{"role": "user", "content": rec.steps[0].observation}]
    # the model was sent the clean conversation, without the recording's extra keys
    assert all(set(m) <= {"role", "content"} for m in model.seen[-1])
    json.dumps(traj)  # serialisable as a .traj file


async def test_replies_without_an_action_or_with_two_get_a_correction(task: ReadyTask, env: SandboxEnvironment) -> None:
    two = "THOUGHT: both\n```bash\nls\n```\n```bash\npwd\n```\n"
    model = ScriptedModel(["I will look around first.", two, bash("python baseline.py"), bash("submit")],
                          repeat_last=False)
    rec = await play(task, env, model)
    assert rec.info.exit_status == "submitted"
    corrections = rec.steps[0].extra_info.format_corrections
    assert [c.problem.split(":")[0] for c in corrections] == ["the reply holds no command",
                                                                 "the reply holds 2 commands"]
    # the second and third calls carried the bad reply and the correction; the clean history does not
    assert model.seen[1][-2] == {"role": "assistant", "content": "I will look around first."}
    assert model.seen[1][-1]["content"].startswith("Your reply could not be used: the reply holds no command")
    assert model.seen[2][-1]["content"].startswith("Your reply could not be used: the reply holds 2 commands")
    assert len(model.seen[3]) == 4  # system, instance, the good action, its observation
    assert all("could not be used" not in m.content for m in rec.history)


async def test_endless_format_errors_end_with_exit_format(task: ReadyTask, env: SandboxEnvironment) -> None:
    model = ScriptedModel(["no action here"])
    rec = await play(task, env, model, EpisodeLimits(max_format_errors=3))
    assert rec.info.exit_status == "exit_format"
    assert len(model.seen) == 4 and rec.steps == []


async def test_the_step_limit_ends_with_exit_cost_and_autosubmits(task: ReadyTask, env: SandboxEnvironment) -> None:
    rec = await play(task, env, ScriptedModel([bash("python baseline.py"), bash("ls")]), EpisodeLimits(max_steps=3))
    assert rec.info.exit_status == "submitted (exit_cost)" and "step limit of 3" in rec.info.exit_detail
    assert rec.info.score == pytest.approx(task.baseline_score) and len(rec.steps) == 3
    rec = await play(task, env, ScriptedModel([bash("rm -f submission.csv"), bash("ls")]), EpisodeLimits(max_steps=2))
    assert rec.info.exit_status == "exit_cost" and not rec.submitted and rec.info.score is None


async def test_the_cost_and_token_limits_end_with_exit_cost(task: ReadyTask, env: SandboxEnvironment) -> None:
    rec = await play(task, env, ScriptedModel([bash("ls")], cost_per_call=0.5), EpisodeLimits(max_cost_usd=1.0))
    assert rec.info.exit_status == "exit_cost" and "cost limit" in rec.info.exit_detail
    assert len(rec.steps) == 2 and rec.info.model_stats.instance_cost == pytest.approx(1.0)
    rec = await play(task, env, ScriptedModel([bash("ls")]), EpisodeLimits(max_tokens=2000))
    assert rec.info.exit_status == "exit_cost" and "token limit" in rec.info.exit_detail


async def test_a_conversation_past_the_context_limit_ends_with_exit_context(
        task: ReadyTask, env: SandboxEnvironment) -> None:
    rec = await play(task, env, ScriptedModel([bash("cat data/train.csv")]),
                     EpisodeLimits(context_tokens=2000, observation_chars=10_000))
    assert rec.info.exit_status == "exit_context" and "context limit of 2000" in rec.info.exit_detail
    assert len(rec.steps) == 1 and "characters elided" in rec.steps[0].observation


async def test_commands_that_keep_timing_out_end_with_exit_command_timeout(
        task: ReadyTask, env: SandboxEnvironment) -> None:
    env.command_timeout_s = 0.5
    rec = await play(task, env, ScriptedModel([bash("echo started; sleep 30")]), EpisodeLimits(max_timeouts=3))
    assert rec.info.exit_status == "exit_command_timeout" and len(rec.steps) == 3
    assert all("timed out after" in s.observation for s in rec.steps)


async def test_the_wall_time_limit_ends_with_exit_total_execution_time(
        task: ReadyTask, env: SandboxEnvironment) -> None:
    # the command's own timeout is long; the episode's remaining wall time cuts it short
    rec = await play(task, env, ScriptedModel([bash("sleep 60")]), EpisodeLimits(wall_time_s=2.0))
    assert rec.info.exit_status == "exit_total_execution_time" and len(rec.steps) == 1


async def test_an_unscorable_submit_is_answered_and_the_episode_goes_on(
        task: ReadyTask, env: SandboxEnvironment) -> None:
    model = ScriptedModel([bash("submit"), bash("echo id,x > submission.csv"), bash("validate"),
                           bash("python baseline.py"), bash("submit")], repeat_last=False)
    rec = await play(task, env, model)
    obs = [s.observation for s in rec.steps]
    assert obs[0].startswith("Your submission could not be scored: there is no submission.csv")
    assert "differ from sample_submission.csv" in obs[2]
    assert rec.validate_scores == [None] and rec.info.exit_status == "submitted"


async def test_tool_call_mode_records_tool_turns(task: ReadyTask, env: SandboxEnvironment) -> None:
    model = ScriptedModel([("Look first.", [tool_call("ls", "c1")]),
                           ("Two at once.", [tool_call("ls", "c2"), tool_call("pwd", "c3")]),
                           ("Run it.", [tool_call("python baseline.py", "c4")]),
                           ("Done.", [tool_call("submit", "c5")])], repeat_last=False)
    rec = await play(task, env, model, action_format="tool_call")
    assert rec.info.exit_status == "submitted"
    roles = [m.role for m in rec.history]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 3
    assert rec.history[3].tool_call_id == "c1" and rec.history[2].tool_calls[0]["id"] == "c1"
    # the corrected reply's two calls were each answered before the correction
    sent = model.seen[2]
    assert [m["role"] for m in sent[-4:]] == ["assistant", "tool", "tool", "user"]
