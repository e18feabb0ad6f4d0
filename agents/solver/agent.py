"""solver: `solve.requested` -> one episode in the task's sandbox -> `trajectory.completed`.

The episode runs from scratch on every delivery: a solver killed mid-episode leaves the message un-acked,
it is redelivered, and the redo publishes under the same derived id, so one trajectory per attempt
reaches the store. Heartbeats (the consumer's) keep the message alive through long episodes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agents.artifacts import fetch_dataset
from agents.llm import LLM, Completion
from agents.llm_agent import LLMAgent
from agents.runtime import AgentContext, Emit
from agents.solver.actions import BASH_TOOL, ActionFormat
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import Episode, Limits
from agents.solver.record import Recorder
from agents.taskrun import StepFailed, open_workspace
from bus import Event
from domain.payloads import SolveRequested, TrajectoryCompleted
from domain.tasks import TaskBundle
from domain.tokens import conversation_tokens
from prompts import render
from sandbox import Backend, SandboxUnavailable, get_backend


class LLMModel:
    """The loop's Model over the LLM client: purpose `solve`, the attempt as the sampling seed."""

    def __init__(self, llm: LLM, seed: int, action_format: ActionFormat) -> None:
        self.llm, self.seed = llm, seed
        self.tools = [BASH_TOOL] if action_format == "tool_call" else None

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        return await self.llm.complete(messages, purpose="solve", seed=self.seed, tools=self.tools)


def workspace_files(b: TaskBundle) -> list[str]:
    return sorted({*b.starter_files, "sample_submission.csv"} & set(b.files))


def instance_prompt(p: SolveRequested) -> str:
    b = p.bundle
    docs = f"{b.dataset_name.upper()}:\n{b.dataset_description}".strip()
    facts = {"task_id": b.task_id, "task_type": b.task_type, "metric": b.metric, "direction": b.direction,
             "baseline_score": p.baseline_score, "training_timeout": b.training_timeout}
    return render("solver_instance", name=b.name, description=b.description.replace("{dataset_docs}", docs),
                  metric=b.metric, direction=b.direction, baseline_score=p.baseline_score,
                  files=workspace_files(b), facts=facts)


class SolverAgent(LLMAgent):
    role = "solver"
    consumes = ("solve.requested",)
    model_kind = "solver"
    ack_wait_s = 60.0
    default_concurrency = 4

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.limits: Limits = ctx.options.get("solver_limits") or Limits()
        self.action_format: ActionFormat = ctx.options.get("action_format", "thought_action")
        self.command_timeout_s: float = ctx.options.get("command_timeout_s", 25.0)
        self.backend: Backend = get_backend(ctx.options.get("sandbox"))

    async def work(self, event: Event) -> Sequence[Emit]:
        p: SolveRequested = event.payload  # type: ignore[assignment]
        recorder = self.recorder(p)
        raw = await fetch_dataset(self.ctx.bus, p.bundle.data, self.ctx.data_dir / "cache" / "datasets")
        workdir = Path(tempfile.mkdtemp(prefix=f"solve-{p.bundle.task_id}-{p.attempt}-", dir=self.ctx.data_dir))
        try:
            await self.episode(p, raw, workdir, recorder)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return [Emit("trajectory.completed", completed(p, recorder))]

    async def episode(self, p: SolveRequested, raw: Path, workdir: Path, recorder: Recorder) -> None:
        try:
            ws = await open_workspace(self.backend, p.bundle, raw, workdir, files=workspace_files(p.bundle))
        except SandboxUnavailable as exc:
            raise RuntimeError(f"sandbox unavailable: {exc}") from None  # transient: nak'ed and retried
        except StepFailed as exc:  # a validated task that no longer prepares: an attempt that errored
            recorder.finish("exit_error", f"the workspace could not be prepared: {exc}", submitted=False)
            return
        try:
            env = SandboxEnvironment(ws, self.command_timeout_s, float(p.bundle.training_timeout))
            baseline = {p.bundle.metric: p.baseline_score}
            await Episode(LLMModel(self.llm, p.attempt, self.action_format), env, self.limits, recorder,
                          self.action_format, baseline).run()
        finally:
            await ws.close()

    def recorder(self, p: SolveRequested) -> Recorder:
        b = p.bundle
        system = render("solver_system", action_format=self.action_format, max_steps=self.limits.max_steps,
                        training_timeout=b.training_timeout, command_timeout=round(self.command_timeout_s))
        info = {"task_id": b.task_id, "attempt": p.attempt, "metric": b.metric, "direction": b.direction,
                "baseline_score": p.baseline_score, "model": self.llm.endpoint.model}
        replay = {"action_format": self.action_format, "seed": p.attempt, "limits": asdict(self.limits),
                  "command_timeout_s": self.command_timeout_s, "model": self.llm.endpoint.model}
        return Recorder(system, instance_prompt(p), info, replay, f"gymforge:{self.backend.name}",
                        tool_mode=self.action_format == "tool_call")


def completed(p: SolveRequested, r: Recorder) -> TrajectoryCompleted:
    b = p.bundle
    return TrajectoryCompleted(
        task_id=b.task_id, attempt=p.attempt, attempts_total=p.attempts_total, exit_status=r.info["exit_status"],
        submitted=r.submitted, score=r.info["score"], baseline_score=p.baseline_score, metric=b.metric,
        direction=b.direction, validate_scores=r.validate_scores, tokens=conversation_tokens(r.history),
        steps=len(r.steps), trajectory=r.traj())
