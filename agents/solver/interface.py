"""The bash interface: the model answers with a THOUGHT and one fenced shell command (or one `bash` tool
call); it reads the command's output, shortened in the middle, with its exit code when it is not 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents.llm import Completion
from agents.solver.actions import Action, ActionFormat, command_output, parse_action
from prompts import render

if TYPE_CHECKING:
    from agents.solver.loop import Output, Scored, ScoreError


@dataclass(frozen=True)
class BashInterface:
    action_format: ActionFormat = "thought_action"

    def parse(self, reply: Completion) -> Action:
        return parse_action(reply.text, reply.tool_calls, self.action_format)

    def correction(self, problem: str) -> str:
        return render("solver_format", problem=problem, action_format=self.action_format)

    def output(self, out: Output, limit: int) -> str:
        text = command_output(out.stdout, out.stderr, out.exit_code, limit)
        return text + "\n(killed: out of memory)" if out.oom_killed else text

    def timeout(self, out: Output, seconds: float, limit: int) -> str:
        shown = command_output(out.stdout, out.stderr, 0, limit)
        return render("solver_timeout", seconds=round(seconds), output="" if shown == "(no output)" else shown)

    def scored(self, scored: Scored | None, error: ScoreError | None, baseline: dict[str, float]) -> str:
        if scored is None:
            return render("solver_validate", error=str(error), baseline={}, metrics={})
        return render("solver_validate", error=None, baseline=baseline, metrics=scored.metrics)

    def observation(self, text: str, step: int) -> str:
        return text
