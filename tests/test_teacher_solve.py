"""The offline teacher's rule-based "solve" policy: the next action from a conversation (either action
format; malformed replies, timeouts, failed runs and unscored submits handled), seed-dependent edit
searches, injected format errors and the scripted mode; then real episodes driven by the policy over the
openai SDK and HTTP, with the commands run in a bwrap sandbox on a real drafted bundle."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

import prompts
from agents.taskrun import StepFailed, Workspace, open_workspace
from domain.model_api import PURPOSE_HEADER, TEACHER_MODEL
from domain.tasks import DataRef, TaskBundle
from domain.tokens import conversation_tokens
from prompts import render
from sandbox import ExecResult, get_backend
from teacher.bundles import write_bundle
from teacher.policy import PolicyError, TeacherConfig, answer
from teacher.server import TeacherServer
from teacher.solve import (
    LIST_CMD,
    PEEK_CMD,
    READ_CMD,
    RESTORE_BEST,
    RUN_CMD,
    SAVE_BEST,
    choose_edits,
    shell_blocks,
    solve_reply,
)
from tests.helpers.cli import ROOT, gymforge
from tests.test_teacher import built_catalog

PREFIX = [LIST_CMD, READ_CMD, PEEK_CMD, RUN_CMD, "validate", SAVE_BEST]
SOURCE = '''"""A baseline."""
import pandas as pd

LABEL = "species"
FEATURES = ["a", "b"]
MODEL = "logistic_regression"
C = 0.05
MAX_DEPTH = None
N_ESTIMATORS = 100


def main():
    pass
'''
FACTS = {"task_id": "t-1", "task_type": "tabular_classification", "metric": "accuracy", "direction": "maximize",
         "baseline_score": 0.8, "training_timeout": 300}
BASH_TOOL = {"type": "function", "function": {
    "name": "bash", "description": "run one shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


def instance(facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a research agent."},
            {"role": "user", "content": "TASK: t\n\nTask facts as JSON:\n```json\n" + json.dumps(facts, indent=2)
                                        + "\n```\n\nStart by looking at the workspace.\n"}]


def validated(metric: str, baseline: float, value: float) -> str:
    return render("solver_validate", error=None, baseline={metric: baseline}, metrics={metric: value})


def unscored(reason: str) -> str:
    return render("solver_validate", error=reason, baseline={}, metrics={})


@dataclass
class FakeTask:
    """A stand-in workspace for the pure tests: baseline.py's MODEL decides the score of a run."""

    scores: dict[str, float]
    failing: set[str] = field(default_factory=set)  # models whose run exits 1
    timeouts: int = 0  # the next runs of python that time out
    unscored_submits: int = 0  # the first submits that cannot be scored
    model: str = "logistic_regression"
    submission: str | None = None
    best_file: str | None = None
    submitted: float | None = None

    def run(self, command: str) -> str:
        if command == LIST_CMD:
            return ".:\nbaseline.py\ndata\nevaluate.py\nsample_submission.csv\n\ndata:\ntest.csv\ntrain.csv"
        if command == READ_CMD:
            return SOURCE
        if command == PEEK_CMD:
            return "id,a,b,species\n0,1.0,2.0,setosa"
        if command.startswith("sed -i"):
            self.model = re.search(r'MODEL = "(\w+)"', command).group(1)  # type: ignore[union-attr]
            return "(no output)"
        if command == RUN_CMD:
            return self.train()
        if command == SAVE_BEST:
            self.best_file = self.submission
            return "(no output)"
        if command == RESTORE_BEST:
            self.submission = self.best_file
            return "(no output)"
        if command in ("validate", "submit"):
            return self.score(command)
        raise AssertionError(f"unexpected command {command!r}")

    def train(self) -> str:
        if self.timeouts:
            self.timeouts -= 1
            return render("solver_timeout", seconds=300, output="")
        if self.model in self.failing:
            return f"Traceback (most recent call last):\nValueError: {self.model} broke\n(exit code 1)"
        self.submission = self.model
        return f"{self.model}: validation accuracy 0.9000; wrote 30 predictions to submission.csv"

    def score(self, command: str) -> str:
        if self.submission is None:
            return unscored("submission.csv not found")
        if command == "submit" and self.unscored_submits:
            self.unscored_submits -= 1
            return unscored("evaluate.py crashed")
        value = self.scores[self.submission]
        if command == "submit":
            self.submitted = value
        return validated("accuracy", self.scores["logistic_regression"], value)


@dataclass
class Played:
    commands: list[str]
    replies: list[str]
    observations: list[str]
    messages: list[dict[str, Any]]

    def models_tried(self) -> list[str]:
        return [re.search(r'MODEL = "(\w+)"', c).group(1) for c in self.commands if c.startswith("sed")]  # type: ignore[union-attr]

    def validate_scores(self) -> list[float]:
        return [float(m.group(1)) for c, o in zip(self.commands, self.observations, strict=True) if c == "validate"
                for m in [re.search(r"Evaluation Score: {\"accuracy\": ([\d.]+)", o)] if m]


def play(task: FakeTask, seed: int | None, facts: dict[str, Any] = FACTS, max_steps: int = 40) -> Played:
    messages = instance(facts)
    played = Played([], [], [], messages)
    for _ in range(max_steps):
        reply = solve_reply(messages, seed=seed)
        (command,) = shell_blocks(reply)
        observation = task.run(command)
        played.commands.append(command)
        played.replies.append(reply)
        played.observations.append(observation)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": observation}]
        if command == "submit" and "could not be scored" not in observation:
            return played
    raise AssertionError(f"no submit in {max_steps} steps: {played.commands}")


def thought(reply: str) -> str:
    return reply.split("```")[0].removeprefix("THOUGHT:").strip()


# --- the plan -----------------------------------------------------------------------------------------------


def test_plan_reproduces_the_baseline_tries_edits_and_submits_the_best() -> None:
    task = FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85})
    p = play(task, seed=0)
    assert p.models_tried() == ["hist_gradient_boosting", "logistic_regression"]
    seds = [c for c in p.commands if c.startswith("sed")]
    assert p.commands == [*PREFIX, seds[0], RUN_CMD, "validate", SAVE_BEST, seds[1], RUN_CMD, "validate",
                          RESTORE_BEST, "submit"]
    assert task.submitted == 0.9 == max(p.validate_scores())
    for reply in p.replies:
        assert re.fullmatch(r"THOUGHT: [^`]+\n\n```bash\n[^\n]+\n```\n", reply), reply
    # the reasoning cites what was seen
    said = [thought(r) for r in p.replies]
    assert "0.8" in said[0] and 'MODEL = "logistic_regression"' in said[2]
    assert "accuracy went from 0.8 to 0.9" in said[9]
    assert "validation accuracy 0.9000" in said[8]
    assert "0.9" in said[-1] and "beats the baseline's 0.8" in said[-1]


@pytest.mark.parametrize("seed", range(8))
def test_every_seed_follows_the_plan_and_submits_its_best_validated_score(seed: int) -> None:
    task = FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.7})
    p = play(task, seed)
    assert p.commands[:6] == PREFIX and p.commands[-1] == "submit"
    body = p.commands[6:-1]
    i, last_is_best = 0, True
    best = p.validate_scores()[0]
    while i < len(body) and body[i].startswith("sed"):
        assert body[i + 1:i + 3] == [RUN_CMD, "validate"]
        value = task.scores[re.search(r'MODEL = "(\w+)"', body[i]).group(1)]  # type: ignore[union-attr]
        if value > best:
            assert body[i + 3] == SAVE_BEST
            best, last_is_best, i = value, True, i + 4
        else:
            last_is_best, i = False, i + 3
    assert body[i:] == ([] if last_is_best else [RESTORE_BEST])
    assert task.submitted == best == max(p.validate_scores())


def test_seeds_search_differently_and_not_every_attempt_beats_the_baseline() -> None:
    scores = {"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.7}
    runs = {seed: (play(task := FakeTask(dict(scores)), seed).models_tried(), task.submitted) for seed in range(8)}
    assert len({tuple(models) for models, _ in runs.values()}) >= 2
    assert {submitted > 0.8 for _, submitted in runs.values()} == {True, False}  # type: ignore[operator]
    # deterministic: the same seed and observations give the same episode
    assert play(FakeTask(dict(scores)), 3).replies == play(FakeTask(dict(scores)), 3).replies


def test_the_next_action_is_read_from_either_format_and_malformed_replies_are_skipped() -> None:
    p = play(FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85}), seed=0)
    upto = 2 + 2 * 7  # instance + 7 (action, observation) pairs: just after the first edit's validate
    plain = p.messages[:upto]
    expected = p.commands[7]
    assert solve_reply(plain, seed=0) == p.replies[7]

    tool_form: list[dict[str, Any]] = plain[:2]
    for k, (command, observation) in enumerate(zip(p.commands[:7], p.observations[:7], strict=True)):
        call = {"id": f"call_{k}", "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": command})}}
        tool_form += [{"role": "assistant", "content": "thinking", "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": f"call_{k}", "content": observation}]
    assert shell_blocks(solve_reply(tool_form, seed=0)) == [expected]

    # a bad reply and its correction (and, in tool mode, the answers to its calls) change nothing
    correction = {"role": "user", "content": render("solver_format", problem="the reply holds 2 commands",
                                                    action_format="thought_action")}
    bad = {"role": "assistant", "content": "THOUGHT: x\n\n```bash\nls\n```\n\n```bash\nsubmit\n```\n"}
    assert shell_blocks(solve_reply([*plain, bad, correction], seed=0)) == [expected]
    calls = [{"id": f"bad_{i}", "type": "function",
              "function": {"name": "bash", "arguments": json.dumps({"command": c})}} for i, c in enumerate(["ls", "submit"])]
    bad_tool = [{"role": "assistant", "content": "", "tool_calls": calls},
                *({"role": "tool", "tool_call_id": c["id"], "content": "not run: two calls"} for c in calls),
                {"role": "user", "content": render("solver_format", problem="two calls", action_format="tool_call")}]
    assert shell_blocks(solve_reply([*tool_form, *bad_tool], seed=0)) == [expected]


def test_a_timed_out_step_is_retried_then_counted_as_failed() -> None:
    scores = {"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85}
    once = play(FakeTask(dict(scores), timeouts=1), seed=1)
    assert once.commands[3:6] == [RUN_CMD, RUN_CMD, "validate"]
    assert "timed out after 300 s" in thought(once.replies[4])
    assert once.validate_scores()[0] == 0.8

    always = play(FakeTask(dict(scores), timeouts=3), seed=1)  # the first run and both retries time out
    assert always.commands[3:7] == [RUN_CMD, RUN_CMD, RUN_CMD, "validate"]
    assert "failed (it timed out after 300 s)" in thought(always.replies[6])


def test_a_failed_run_counts_as_worse_and_the_best_is_restored() -> None:
    task = FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85},
                    failing={"hist_gradient_boosting"})
    p = play(task, seed=0)  # hist_gradient_boosting (fails), then logistic_regression (0.8, no gain)
    seds = [c for c in p.commands if c.startswith("sed")]
    assert p.commands[6:] == [seds[0], RUN_CMD, seds[1], RUN_CMD, "validate", RESTORE_BEST, "submit"]
    assert "That run failed (it exited with code 1)" in thought(p.replies[8])
    assert task.submitted == 0.8 and "could not beat the baseline's 0.8" in thought(p.replies[-1])


def test_an_unscored_submit_restores_the_best_and_submits_again() -> None:
    task = FakeTask({"logistic_regression": 0.8, "hist_gradient_boosting": 0.9, "random_forest": 0.85},
                    unscored_submits=1)
    p = play(task, seed=1)  # random_forest only: 0.85, the last submission is the best
    assert p.commands[-4:] == [SAVE_BEST, "submit", RESTORE_BEST, "submit"]
    assert "could not be scored" in thought(p.replies[-2]) and task.submitted == 0.85


def test_edits_are_found_in_a_shortened_cat_of_baseline_py() -> None:
    # the solver keeps the head and tail of a long output: the file no longer parses as a whole
    cut = SOURCE.index("def main")
    shortened = SOURCE[:cut] + "def ma\n[... 4000 characters elided ...]\n    pass\n"
    assert [e.settings["MODEL"] for e in choose_edits(shortened, "tabular_classification", 0)] == [
        e.settings["MODEL"] for e in choose_edits(SOURCE, "tabular_classification", 0)] != []
    assert choose_edits("cat: baseline.py: No such file or directory\n(exit code 1)", "tabular_classification", 0) == []


def test_missing_facts_and_empty_scripts_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="task facts"):
        answer("solve", [{"role": "user", "content": "solve it"}], TeacherConfig())
    with pytest.raises(PolicyError, match="empty"):
        answer("solve", instance(FACTS), TeacherConfig(solve_script=()))
    with pytest.raises(PolicyError, match="no policy"):
        answer("", instance(FACTS), TeacherConfig())  # no purpose and no script


# --- format errors and scripts ------------------------------------------------------------------------------


def test_a_format_error_rate_of_one_alternates_no_block_and_two_blocks() -> None:
    config = TeacherConfig(solve_format_error_rate=1.0)
    messages = instance(FACTS)
    counts = []
    for _ in range(4):
        reply = answer("solve", messages, config, seed=5)
        counts.append(len(shell_blocks(reply)))
        messages += [{"role": "assistant", "content": reply},
                     {"role": "user", "content": render("solver_format", problem="bad", action_format="thought_action")}]
    assert counts == [0, 2, 0, 2]
    # the two-block reply still holds the step the plan wanted first
    assert shell_blocks(messages[4]["content"])[0] == LIST_CMD


def test_a_partial_format_error_rate_is_a_deterministic_draw_per_turn() -> None:
    config = TeacherConfig(solve_format_error_rate=0.5)
    by_blocks = {0: 0, 1: 0, 2: 0}
    for seed in range(10):
        messages = instance(FACTS)
        for turn in range(6):
            reply = answer("solve", messages, config, seed=seed)
            assert answer("solve", messages, config, seed=seed) == reply
            by_blocks[len(shell_blocks(reply))] += 1
            messages = messages + [{"role": "assistant", "content": f"filler {turn}"}]
    assert by_blocks[1] > 10 and by_blocks[0] + by_blocks[2] > 10
    assert all(len(shell_blocks(answer("solve", instance(FACTS), TeacherConfig(), seed=s))) == 1 for s in range(20))


def test_a_script_is_replayed_verbatim_one_reply_per_assistant_turn() -> None:
    config = TeacherConfig(solve_script=("first", "second\n```bash\nsubmit\n```\n"), solve_format_error_rate=1.0)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "no facts needed"}]
    assert answer("solve", messages, config) == "first"
    assert answer("", messages, config) == "first"  # no purpose header: a scripted solve
    messages += [{"role": "assistant", "content": "first"}, {"role": "user", "content": "ok"}]
    assert answer("", messages, config) == config.solve_script[1]  # type: ignore[index]
    messages += [{"role": "assistant", "content": "x"}] * 3
    assert answer("solve", messages, config) == config.solve_script[1]  # type: ignore[index]
    with pytest.raises(PolicyError, match="no policy"):
        answer("", messages, TeacherConfig())


# --- real episodes: the policy over HTTP (openai SDK), the commands in a bwrap sandbox ---------------------


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_catalog(tmp_path_factory)


@pytest.fixture
async def teacher() -> AsyncIterator[openai.AsyncOpenAI]:
    async with TeacherServer(config=TeacherConfig()) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=30)
        yield client
        await client.close()


def drafted(root: Path, dataset: str, task_id: str) -> TaskBundle:
    draft = write_bundle(json.loads((root / dataset / "card.json").read_text()), task_id=task_id)
    return TaskBundle(task_id=task_id, data=DataRef(key="test", splits={}), **draft.bundle_fields())


@dataclass
class Episode:
    commands: list[str]
    validate_scores: list[float | None]
    submitted: float | None
    baseline: float


def observe(r: ExecResult) -> str:
    """Command output as the solver shows it: stdout, stderr, the exit code when not 0."""
    if r.timed_out:
        return render("solver_timeout", seconds=round(r.duration_s), output=r.stdout.strip())
    parts = [p.rstrip("\n") for p in (r.stdout, r.stderr) if p.strip()]
    text = "\n".join(parts) or "(no output)"
    return f"{text}\n(exit code {r.exit_code})" if r.exit_code else text


def render_instance(**context: Any) -> str:
    """prompts/solver_instance.j2. prompts.render(name, **context) cannot pass the template's own `name`
    variable (a TypeError), so this renders the same template the way render() does."""
    return prompts._template("solver_instance").render(**context).strip() + "\n"  # noqa: SLF001


async def scored(ws: Workspace, baseline: dict[str, float]) -> tuple[str, float | None]:
    try:
        score = await ws.evaluate()
    except StepFailed as exc:
        return render("solver_validate", error=str(exc), baseline={}, metrics={}), None
    return render("solver_validate", error=None, baseline=baseline, metrics=score.metrics), score.value


async def run_episode(client: openai.AsyncOpenAI, root: Path, work: Path, dataset: str, task_id: str,
                      seed: int) -> Episode:
    b = drafted(root, dataset, task_id)
    ws = await open_workspace(get_backend("bwrap"), b, root / dataset, work,
                              files=[*b.starter_files, "sample_submission.csv"])
    try:
        assert not (await ws.session.exec("test -e prepare.py")).ok  # only the starter files and the data
        assert (await ws.session.exec(RUN_CMD, timeout=b.training_timeout)).ok
        baseline = (await ws.evaluate()).value
        await ws.session.exec("rm -f submission.csv")
        facts = {"task_id": b.task_id, "task_type": b.task_type, "metric": b.metric, "direction": b.direction,
                 "baseline_score": baseline, "training_timeout": b.training_timeout}
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": render("solver_system", action_format="thought_action", max_steps=40,
                                                 training_timeout=b.training_timeout, command_timeout=60)},
            {"role": "user", "content": render_instance(
                name=b.name, description=b.description, metric=b.metric, direction=b.direction,
                baseline_score=baseline, files=[*b.starter_files, "sample_submission.csv"], facts=facts)}]
        episode = Episode([], [], None, baseline)
        for _ in range(40):
            response = await client.chat.completions.create(
                model=TEACHER_MODEL, messages=messages, seed=seed,  # type: ignore[arg-type]
                extra_headers={PURPOSE_HEADER: "solve"})
            reply = response.choices[0].message.content or ""
            (command,) = shell_blocks(reply)
            episode.commands.append(command)
            if command in ("validate", "submit"):
                observation, value = await scored(ws, {b.metric: baseline})
                if command == "validate":
                    episode.validate_scores.append(value)
                elif value is not None:
                    episode.submitted = value
                    return episode
            else:
                observation = observe(await ws.session.exec(command, timeout=b.training_timeout))
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": observation}]
        raise AssertionError(f"no scored submit in 40 steps: {episode.commands}")
    finally:
        await ws.close()


def check_episode(e: Episode, direction: str) -> None:
    assert len(e.commands) >= 8, e.commands
    assert e.commands.count(RUN_CMD) >= 2 and e.commands[3] == RUN_CMD
    scores = [s for s in e.validate_scores if s is not None]
    assert len(scores) >= 2, e.validate_scores
    assert scores[0] == pytest.approx(e.baseline)  # the unchanged baseline, reproduced in the episode
    best = max(scores) if direction == "maximize" else min(scores)
    assert e.submitted == best, (e.submitted, e.validate_scores)


@pytest.mark.timeout(600)
async def test_real_episodes_on_a_tabular_classification_task(teacher: openai.AsyncOpenAI, catalog_root: Path,
                                                              tmp_path: Path) -> None:
    # iris-0001 drafts a strongly regularised logistic regression baseline (C = 0.05)
    episodes = {seed: await run_episode(teacher, catalog_root, tmp_path / f"s{seed}", "iris", "iris-0001", seed)
                for seed in (0, 1)}
    for e in episodes.values():
        check_episode(e, "maximize")
    assert episodes[0].commands != episodes[1].commands  # different attempts search differently
    assert any(e.submitted > e.baseline for e in episodes.values() if e.submitted is not None)


@pytest.mark.timeout(600)
async def test_real_episode_on_a_regression_task_minimises(teacher: openai.AsyncOpenAI, catalog_root: Path,
                                                          tmp_path: Path) -> None:
    # diabetes-0001 drafts a depth-3 regression tree; seed 0 tries ridge (better), then boosting (worse here)
    e = await run_episode(teacher, catalog_root, tmp_path / "d", "diabetes", "diabetes-0001", seed=0)
    check_episode(e, "minimize")
    assert e.submitted is not None and e.submitted < e.baseline
    assert e.commands[-2:] == [RESTORE_BEST, "submit"]  # the last run was not the best: its copy is restored


# --- tool-call mode and scripts over HTTP --------------------------------------------------------------------


async def test_tool_call_mode_round_trip_through_the_sdk() -> None:
    async with TeacherServer(config=TeacherConfig(solve_format_error_rate=0.0)) as server, \
            openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0) as client:
        messages: list[dict[str, Any]] = instance(FACTS)
        first = await client.chat.completions.create(
            model=TEACHER_MODEL, messages=messages, seed=0, tools=[BASH_TOOL],  # type: ignore[arg-type,list-item]
            extra_headers={PURPOSE_HEADER: "solve"})
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.type == "function" and call.function.name == "bash" and call.id.startswith("call_")
        assert json.loads(call.function.arguments) == {"command": LIST_CMD}
        assert choice.message.content and choice.message.content.startswith("Before changing anything")
        assert first.usage is not None and first.usage.prompt_tokens == conversation_tokens(messages)

        messages += [choice.message.model_dump(include={"role", "content", "tool_calls"}),
                     {"role": "tool", "tool_call_id": call.id, "content": "baseline.py\ndata\nevaluate.py"}]
        second = await client.chat.completions.create(
            model=TEACHER_MODEL, messages=messages, seed=0, tools=[BASH_TOOL],  # type: ignore[arg-type,list-item]
            extra_headers={PURPOSE_HEADER: "solve"})
        (call2,) = second.choices[0].message.tool_calls or []
        assert json.loads(call2.function.arguments) == {"command": READ_CMD} and call2.id != call.id
        assert second.usage is not None and second.usage.prompt_tokens == conversation_tokens(messages)

    async with TeacherServer(config=TeacherConfig(solve_format_error_rate=1.0)) as server, \
            openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0) as client:
        messages = instance(FACTS)
        none = (await client.chat.completions.create(
            model=TEACHER_MODEL, messages=messages, seed=0, tools=[BASH_TOOL],  # type: ignore[arg-type,list-item]
            extra_headers={PURPOSE_HEADER: "solve"})).choices[0]
        assert not none.message.tool_calls and none.finish_reason == "stop" and none.message.content
        messages += [{"role": "assistant", "content": none.message.content},
                     {"role": "user", "content": render("solver_format", problem="no call", action_format="tool_call")}]
        two = (await client.chat.completions.create(
            model=TEACHER_MODEL, messages=messages, seed=0, tools=[BASH_TOOL],  # type: ignore[arg-type,list-item]
            extra_headers={PURPOSE_HEADER: "solve"})).choices[0]
        assert len(two.message.tool_calls or []) == 2 and two.finish_reason == "tool_calls"
        with pytest.raises(openai.BadRequestError, match="int seed"):
            await client.chat.completions.create(model=TEACHER_MODEL, messages=messages,  # type: ignore[arg-type]
                                                 extra_body={"seed": "one"}, extra_headers={PURPOSE_HEADER: "solve"})


async def test_a_script_answers_a_client_that_sends_no_purpose() -> None:
    script = ("THOUGHT: look\n\n```bash\nls\n```\n", "THOUGHT: done\n\n```bash\nsubmit\n```\n")
    async with TeacherServer(config=TeacherConfig(solve_script=script)) as server, \
            openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0) as client:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Solve the task."}]
        replies = []
        for _ in range(3):
            reply = (await client.chat.completions.create(model=TEACHER_MODEL, messages=messages)).choices[0]  # type: ignore[arg-type]
            replies.append(reply.message.content)
            messages += [{"role": "assistant", "content": reply.message.content}, {"role": "user", "content": "ok"}]
        assert replies == [script[0], script[1], script[1]]
        assert server.teacher.counters.by_purpose == {"": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_gymforge_teacher_serves_a_solve_script_file(tmp_path: Path) -> None:
    script = ["THOUGHT: look\n\n```bash\nls\n```\n", "THOUGHT: done\n\n```bash\nsubmit\n```\n"]
    (tmp_path / "script.json").write_text(json.dumps(script))
    (tmp_path / "bad.json").write_text(json.dumps({"not": "a list"}))
    for flags, message in ((["--solve-script", str(tmp_path / "bad.json")], "non-empty JSON list of strings"),
                           (["--solve-script", str(tmp_path / "missing.json")], "cannot read --solve-script"),
                           (["--solve-format-error-rate", "1.5"], "between 0 and 1")):
        bad = await gymforge("teacher", *flags, url="nats://127.0.0.1:1", data_dir=tmp_path / "gf")
        assert bad.code == 2 and message in bad.err, (flags, bad.err)

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gymforge.cli", "teacher", "--port", str(port), "--solve-script",
        str(tmp_path / "script.json"), "--solve-format-error-rate", "0.5", cwd=ROOT,
        env={**os.environ, "GYMFORGE_DATA_DIR": str(tmp_path / "gf")},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0,
                                      timeout=5) as client:
            for _ in range(100):  # until it listens
                try:
                    first = await client.chat.completions.create(
                        model=TEACHER_MODEL, messages=[{"role": "user", "content": "Solve the task."}])
                    break
                except openai.APIConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("gymforge teacher did not start")
            assert first.choices[0].message.content == script[0]
            second = await client.chat.completions.create(model=TEACHER_MODEL, messages=[
                {"role": "user", "content": "Solve the task."}, {"role": "assistant", "content": script[0]},
                {"role": "user", "content": "a.txt"}], extra_headers={PURPOSE_HEADER: "solve"})
            assert second.choices[0].message.content == script[1]
    finally:
        proc.terminate()
        await proc.wait()
