"""The task's sandboxed workspace as the episode's Environment.

Ordinary commands get a short timeout; a command that runs python (training) gets the task's
training_timeout, as in MLGym. `score()` checks submission.csv and runs the hidden evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents.solver.loop import NoSubmission, Output, Scored, ScoreError
from agents.taskrun import StepFailed, Workspace, check_submission_format

STEP_TAG = re.compile(r"^\[\w+\] ")
TRAINING = re.compile(r"(^|[\s;&|(/])(python3?|pip3?|bash|sh)(\s|$)|\.py\b")


@dataclass
class SandboxEnvironment:
    workspace: Workspace
    command_timeout_s: float = 25.0
    training_timeout_s: float = 300.0

    def timeout_for(self, command: str) -> float:
        return self.training_timeout_s if TRAINING.search(command) else self.command_timeout_s

    async def execute(self, command: str, timeout: float) -> Output:
        return await self.run(command, timeout)

    async def run(self, command: str | Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> Output:
        """A command (a str runs under /bin/sh -c, a sequence as argv) with extra environment variables."""
        r = await self.workspace.session.exec(command, timeout=timeout, env=env)
        return Output(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code, duration_s=r.duration_s,
                      timed_out=r.timed_out, oom_killed=r.oom_killed)

    async def score(self) -> Scored:
        ws = self.workspace
        try:
            submission = await ws.session.get("submission.csv")
        except OSError:
            raise NoSubmission("there is no submission.csv in the workspace; write your predictions there") from None
        try:
            check_submission_format(ws.bundle.files.get("sample_submission.csv", ""), submission)
            score = await ws.evaluate()
        except StepFailed as exc:
            raise ScoreError(STEP_TAG.sub("", str(exc), count=1)) from None
        return Scored(metrics=score.metrics, value=score.value)
