"""The episode loop: ask the model, parse one action, run it, append the observation, repeat.

Control flow is a few typed exceptions carrying their messages: `Submitted` ends the episode with a
submission, `LimitsExceeded` ends it with SWE-agent's exit status; a FormatError is answered with a
correction and re-asked (bounded). The model and the environment are Protocols: the solver role binds
them to the LLM client and the sandboxed workspace, tests to a scripted model.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.llm import Completion
from agents.solver.actions import Action, ActionFormat, FormatError
from agents.solver.interface import BashInterface
from agents.solver.record import Recorder, Step
from domain.tokens import conversation_tokens
from domain.trajectory import FormatCorrection
from prompts import render


class Model(Protocol):
    async def query(self, messages: list[dict[str, Any]]) -> Completion: ...


@dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    exit_code: int
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False


@dataclass(frozen=True)
class Scored:
    metrics: dict[str, float]
    value: float


class ScoreError(Exception):
    """The submission cannot be scored; the message says why (shown to the model)."""


class NoSubmission(ScoreError):
    """There is no submission file to score."""


class Environment(Protocol):
    def timeout_for(self, command: str) -> float: ...
    async def execute(self, command: str, timeout: float) -> Output: ...
    async def score(self) -> Scored: ...


class Interface(Protocol):
    """What the model writes and reads: its reply format, and the text of each observation (interface.py:
    the bash one; mlgym.py: MLGym's)."""

    def parse(self, reply: Completion) -> Action: ...
    def correction(self, problem: str) -> str: ...
    def output(self, out: Output, limit: int) -> str: ...
    def timeout(self, out: Output, seconds: float, limit: int) -> str: ...
    def scored(self, scored: Scored | None, error: ScoreError | None, baseline: dict[str, float]) -> str: ...
    def observation(self, text: str, step: int) -> str: ...


@dataclass(frozen=True)
class EpisodeLimits:
    max_steps: int = 50
    max_cost_usd: float = 4.0  # MLGym's per-instance budget
    max_tokens: int = 2_000_000  # tokens sent + received over the episode
    context_tokens: int = 64_000  # the conversation's estimated size before a call
    wall_time_s: float = 3600.0
    max_format_errors: int = 3  # corrections before exit_format (SWE-agent re-asks 3 times)
    max_timeouts: int = 3  # consecutive command timeouts before exit_command_timeout
    observation_chars: int = 10_000


class CutOff(FormatError):
    """The reply ended at the length limit: it is never read (a draft in it is not a command)."""


class Interrupt(Exception):
    exit_status = "exit_error"


class Submitted(Interrupt):
    exit_status = "submitted"


class LimitsExceeded(Interrupt):
    def __init__(self, exit_status: str, detail: str) -> None:
        super().__init__(detail)
        self.exit_status = exit_status


@dataclass
class Turn:
    reply: Completion
    action: Action
    corrections: list[FormatCorrection]
    model_time: float


@dataclass
class Episode:
    model: Model
    env: Environment
    limits: EpisodeLimits
    recorder: Recorder
    action_format: ActionFormat = "thought_action"
    baseline: dict[str, float] = field(default_factory=dict)
    interface: Interface | None = None  # None: the bash interface in `action_format`
    started: float = 0.0
    timeouts: int = 0
    ui: Interface = field(init=False)

    def __post_init__(self) -> None:
        self.ui = self.interface or BashInterface(self.action_format)

    async def run(self) -> Recorder:
        self.started = time.monotonic()
        while True:
            try:
                await self.step()
            except Interrupt as exc:
                await self.finish(exc)
                return self.recorder

    async def step(self) -> None:
        self.check_limits()
        turn = await self.next_action()
        observation, score, execution_time = await self.execute(turn.action)
        observation = self.ui.observation(observation, len(self.recorder.steps) + 1)
        self.recorder.add_step(Step(turn.reply, turn.action, observation, execution_time, score,
                                    turn.corrections, turn.model_time))
        if turn.action.special == "submit" and score is not None:
            raise Submitted("submitted")

    async def next_action(self) -> Turn:
        extra: list[dict[str, Any]] = []
        corrections: list[FormatCorrection] = []
        model_time = 0.0
        while True:
            reply = await self.query(self.recorder.messages() + extra)
            model_time += reply.latency_s
            try:
                if reply.cut_off:
                    raise CutOff("the reply was cut off at the length limit before it ended")
                return Turn(reply, self.ui.parse(reply), corrections, model_time)
            except FormatError as exc:
                corrections.append(FormatCorrection(reply=reply.text, problem=str(exc)))
                if len(corrections) > self.limits.max_format_errors:
                    raise LimitsExceeded("exit_format", f"{len(corrections)} replies in a row had no usable "
                                                        f"action; the last: {exc}") from None
                extra += self.correction(reply, exc)

    def correction(self, reply: Completion, problem: FormatError) -> list[dict[str, Any]]:
        bad: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:  # an answer to every call is required before the next user turn
            bad["tool_calls"] = reply.tool_calls
        answers = [{"role": "tool", "tool_call_id": c.get("id"), "content": f"not run: {problem}"}
                   for c in reply.tool_calls]
        text = render("cut_off").rstrip("\n") if isinstance(problem, CutOff) else self.ui.correction(str(problem))
        return [bad, *answers, {"role": "user", "content": text}]

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        self.check_budget(messages)
        try:
            async with asyncio.timeout(self.remaining()):
                reply = await self.model.query(messages)
        except TimeoutError:
            raise self.out_of_time() from None
        self.recorder.count_call(reply)
        return reply

    async def execute(self, action: Action) -> tuple[str, float | None, float]:
        if action.special:
            return await self.score(action.special)
        timeout = min(self.env.timeout_for(action.command), max(0.001, self.remaining()))
        out = await self.env.execute(action.command, timeout)
        if out.timed_out:
            self.timeouts += 1
            return self.ui.timeout(out, timeout, self.limits.observation_chars // 2), None, out.duration_s
        self.timeouts = 0
        return self.ui.output(out, self.limits.observation_chars), None, out.duration_s

    async def score(self, word: str) -> tuple[str, float | None, float]:
        started = time.monotonic()
        try:
            scored = await self.env.score()
        except ScoreError as exc:
            if word == "validate":
                self.recorder.validate_scores.append(None)
            return self.ui.scored(None, exc, self.baseline), None, time.monotonic() - started
        if word == "validate":
            self.recorder.validate_scores.append(scored.value)
        self.recorder.last_scored = scored
        return self.ui.scored(scored, None, self.baseline), scored.value, time.monotonic() - started

    # --- limits --------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.limits.wall_time_s - (time.monotonic() - self.started)

    def out_of_time(self) -> LimitsExceeded:
        return LimitsExceeded("exit_total_execution_time", f"the episode ran past its {self.limits.wall_time_s:g} s")

    def check_limits(self) -> None:
        lim = self.limits
        if self.remaining() <= 0:
            raise self.out_of_time()
        if self.timeouts >= lim.max_timeouts:
            raise LimitsExceeded("exit_command_timeout", f"{self.timeouts} commands in a row timed out")
        if len(self.recorder.steps) >= lim.max_steps:
            raise LimitsExceeded("exit_cost", f"step limit of {lim.max_steps} reached")

    def check_budget(self, messages: list[dict[str, Any]]) -> None:
        lim, stats = self.limits, self.recorder.stats
        if stats.instance_cost >= lim.max_cost_usd:
            raise LimitsExceeded("exit_cost", f"cost limit of ${lim.max_cost_usd:g} reached (${stats.instance_cost:.4f})")
        if stats.tokens_sent + stats.tokens_received >= lim.max_tokens:
            raise LimitsExceeded("exit_cost", f"token limit of {lim.max_tokens} reached")
        size = conversation_tokens(messages)
        if size > lim.context_tokens:
            raise LimitsExceeded("exit_context", f"the conversation (~{size} tokens) exceeds the context limit "
                                                 f"of {lim.context_tokens}")

    async def finish(self, exc: Interrupt) -> None:
        """Record how it ended; a limit or format exit still scores submission.csv, as SWE-agent autosubmits."""
        status, detail = exc.exit_status, str(exc)
        if not isinstance(exc, Submitted):
            try:
                self.recorder.last_scored = await self.env.score()
                status = f"submitted ({status})"
            except ScoreError:
                self.recorder.last_scored = None
        self.recorder.finish(status, detail, submitted=status.startswith("submitted"))
