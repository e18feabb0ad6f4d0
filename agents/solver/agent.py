"""solver: `solve.requested` -> one episode in the task's sandbox -> `trajectory.completed`.

The episode runs from scratch on every delivery: a solver killed mid-episode leaves the message un-acked,
it is redelivered, and the redo publishes under the same derived id, so one trajectory per attempt
reaches the store. Heartbeats (the consumer's) keep the message alive through long episodes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pydantic import Field

from agents.artifacts import fetch_dataset
from agents.llm import LLM, Completion
from agents.llm_agent import LLMAgent
from agents.model_options import ModelSettings
from agents.runtime import AgentContext, Emit
from agents.solver.actions import BASH_TOOL, ActionFormat
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import Environment, Episode, EpisodeLimits, Interface
from agents.solver.mlgym import WINDOW, mlgym_episode
from agents.solver.record import Recorder
from agents.taskrun import StepFailed, Workspace, open_workspace
from bus import Event, Transient
from domain.payloads import SolveRequested, TrajectoryCompleted
from domain.tasks import TaskBundle
from domain.trajectory import Interface as InterfaceName
from prompts import render
from sandbox import Backend, SandboxSettings, SandboxUnavailable, backend_for


class LLMModel:
    """The loop's Model over the LLM client: purpose `solve`, the attempt as the sampling seed."""

    def __init__(self, llm: LLM, seed: int, action_format: ActionFormat) -> None:
        self.llm, self.seed = llm, seed
        self.tools = [BASH_TOOL] if action_format == "tool_call" else None

    async def query(self, messages: list[dict[str, Any]]) -> Completion:
        return await self.llm.complete(messages, purpose="solve", seed=self.seed, tools=self.tools)


def workspace_files(b: TaskBundle) -> list[str]:
    return sorted({*b.starter_files, "sample_submission.csv"} & set(b.files))


def task_facts(p: SolveRequested) -> dict[str, Any]:
    b = p.bundle
    return {"task_id": b.task_id, "task_type": b.task_type, "metric": b.metric, "direction": b.direction,
            "baseline_score": p.baseline_score, "training_timeout": b.training_timeout}


def task_description(b: TaskBundle) -> str:
    """The description with the dataset's documentation filled in, as MLGym fills `{dataset_docs}`."""
    docs = f"{b.dataset_name.upper()}:\n{b.dataset_description}".strip()
    return b.description.replace("{dataset_docs}", docs)


def instance_prompt(p: SolveRequested) -> str:
    b = p.bundle
    return render("solver_instance", name=b.name, description=task_description(b), metric=b.metric,
                  direction=b.direction, baseline_score=p.baseline_score, files=workspace_files(b),
                  facts=task_facts(p))


def mlgym_instance_prompt(p: SolveRequested, max_steps: int, cwd: str) -> str:
    return render("mlgym_instance", description=task_description(p.bundle).strip(), facts=task_facts(p),
                  max_steps=max_steps, cwd=cwd).rstrip("\n")


_EPISODE = EpisodeLimits()  # the episode's defaults, stated once in loop.py


class SolverSettings(ModelSettings):
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # the shared `sandbox_*` section
    action_format: ActionFormat = Field("thought_action", description="thought_action (one fenced bash block) "
                                        "or tool_call (one `bash` tool call); the bash interface's")
    interface: InterfaceName = Field("bash", description="bash (shell commands) or mlgym (MLGym's default agent: "
                                     "its prompts, DISCUSSION + one command, its file viewer and editor)")
    max_steps: int = Field(_EPISODE.max_steps, ge=1, description="model calls per episode")
    max_cost_usd: float = Field(_EPISODE.max_cost_usd, gt=0, description="model cost per episode")
    max_tokens: int = Field(_EPISODE.max_tokens, ge=1, description="tokens sent + received per episode")
    context_tokens: int = Field(_EPISODE.context_tokens, ge=1000, description="the conversation's size before a call")
    wall_time_s: float = Field(_EPISODE.wall_time_s, gt=0, description="an episode's wall time")
    command_timeout_s: float = Field(25.0, gt=0, description="an ordinary command's timeout (python commands get "
                                     "the task's training_timeout)")

    def limits(self) -> EpisodeLimits:
        return replace(_EPISODE, max_steps=self.max_steps, max_cost_usd=self.max_cost_usd, max_tokens=self.max_tokens,
                       context_tokens=self.context_tokens, wall_time_s=self.wall_time_s)


class SolverAgent(LLMAgent):
    role = "solver"
    consumes = (SolveRequested,)
    produces = (TrajectoryCompleted,)
    model_kind = "solver"
    ack_wait_s = 60.0
    runs_task_code = True
    default_concurrency = 4
    Settings = SolverSettings
    settings: SolverSettings

    def __init__(self, ctx: AgentContext, settings: SolverSettings | None = None) -> None:
        super().__init__(ctx, settings)
        self.limits = self.settings.limits()
        self.interface: InterfaceName = self.settings.interface
        # MLGym's replies are a DISCUSSION and one command block: no tool calls
        self.action_format: ActionFormat = "thought_action" if self.interface == "mlgym" else self.settings.action_format
        self.command_timeout_s = self.settings.command_timeout_s
        self.backend: Backend = backend_for(self.settings.sandbox)

    async def work(self, event: Event) -> Sequence[Emit]:
        p = event.payload_as(SolveRequested)
        raw = await fetch_dataset(self.ctx.bus, p.bundle.data, self.ctx.data_dir / "cache" / "datasets")
        workdir = Path(tempfile.mkdtemp(prefix=f"solve-{p.bundle.task_id}-{p.attempt}-", dir=self.ctx.data_dir))
        try:
            recorder = await self.episode(p, raw, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return [Emit(completed(p, recorder))]

    async def episode(self, p: SolveRequested, raw: Path, workdir: Path) -> Recorder:
        try:
            ws = await open_workspace(self.backend, p.bundle, raw, workdir,
                                      self.settings.sandbox.limits(float(p.bundle.training_timeout)),
                                      files=workspace_files(p.bundle))
        except SandboxUnavailable as exc:  # the machine's sandbox, not the task: retried later
            raise Transient(f"sandbox unavailable: {exc}") from None
        except StepFailed as exc:  # a validated task that no longer prepares: an attempt that errored
            recorder = self.recorder(p, cwd="n/a")
            recorder.finish("exit_error", f"the workspace could not be prepared: {exc}", submitted=False)
            return recorder
        try:
            recorder = self.recorder(p, cwd=ws.session.workdir)
            env, interface = self.surroundings(p, ws)
            await Episode(LLMModel(self.llm, p.attempt, self.action_format), env, self.limits, recorder,
                          self.action_format, {p.bundle.metric: p.baseline_score}, interface).run()
            return recorder
        finally:
            await ws.close()

    def surroundings(self, p: SolveRequested, ws: Workspace) -> tuple[Environment, Interface | None]:
        """The environment the episode's commands run in and the interface the model sees (None: bash)."""
        env = SandboxEnvironment(ws, self.command_timeout_s, float(p.bundle.training_timeout))
        if self.interface == "mlgym":
            return mlgym_episode(env, ws.session.workdir, self.limits.max_steps)
        return env, None

    def recorder(self, p: SolveRequested, cwd: str) -> Recorder:
        b = p.bundle
        if self.interface == "mlgym":
            system = render("mlgym_system", window=WINDOW, training_timeout=b.training_timeout).rstrip("\n")
            instance = mlgym_instance_prompt(p, self.limits.max_steps, cwd)
        else:
            system = render("solver_system", action_format=self.action_format, max_steps=self.limits.max_steps,
                            training_timeout=b.training_timeout, command_timeout=round(self.command_timeout_s))
            instance = instance_prompt(p)
        info = {"task_id": b.task_id, "attempt": p.attempt, "metric": b.metric, "direction": b.direction,
                "baseline_score": p.baseline_score, "model": self.llm.endpoint.model, "interface": self.interface}
        replay = {"interface": self.interface, "action_format": self.action_format, "seed": p.attempt,
                  "limits": asdict(self.limits), "command_timeout_s": self.command_timeout_s,
                  "model": self.llm.endpoint.model, "cwd": cwd}
        return Recorder(system, instance, info, replay, f"gymforge:{self.backend.name}",
                        tool_mode=self.action_format == "tool_call")


def completed(p: SolveRequested, r: Recorder) -> TrajectoryCompleted:
    b, t = p.bundle, r.traj()
    return TrajectoryCompleted(
        task_id=b.task_id, attempt=p.attempt, attempts_total=p.attempts_total, exit_status=t.info.exit_status,
        submitted=r.submitted, score=t.info.score, baseline_score=p.baseline_score, metric=b.metric,
        direction=b.direction, validate_scores=t.info.validate_scores, tokens=t.info.context_tokens,
        steps=len(t.trajectory), trajectory=t)
