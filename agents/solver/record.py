"""The episode's record, built as it runs: a `domain.trajectory.Trajectory` (SWE-agent's `.traj` shape).

`history` is the clean conversation (what the model saw, minus replies that needed a format correction;
those are kept in the step's extra_info). The messages sent to the model are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.llm import Completion
from agents.solver.actions import Action
from domain.tokens import conversation_tokens
from domain.trajectory import (
    FormatCorrection,
    HistoryMessage,
    ModelStats,
    Role,
    StepExtraInfo,
    StepState,
    Trajectory,
    TrajectoryInfo,
    TrajectoryStep,
)


@dataclass(frozen=True)
class Step:
    reply: Completion
    action: Action
    observation: str
    execution_time: float
    score: float | None
    corrections: list[FormatCorrection]
    model_time: float


def _msg(role: Role, content: str, message_type: str, **extra: Any) -> HistoryMessage:
    return HistoryMessage(role=role, content=content, message_type=message_type, agent="solver", **extra)


@dataclass
class Recorder:
    system: str
    instance: str
    start: dict[str, Any]  # the info known up front: task_id, attempt, metric, direction, baseline_score, model
    replay_config: dict[str, Any]
    environment: str
    tool_mode: bool = False
    stats: ModelStats = field(default_factory=ModelStats)  # running totals (the cost unrounded)
    history: list[HistoryMessage] = field(default_factory=list)
    steps: list[TrajectoryStep] = field(default_factory=list)
    validate_scores: list[float | None] = field(default_factory=list)
    last_scored: Any = None  # loop.Scored of the last successful validate/submit/autosubmit
    chat: list[dict[str, Any]] = field(default_factory=list)  # `history` in the chat API's shape
    pending_query: list[dict[str, Any]] = field(default_factory=list)  # sent since the last step
    outcome: TrajectoryInfo | None = None  # set by finish()

    def __post_init__(self) -> None:
        self.append(_msg("system", self.system, "system_prompt"), _msg("user", self.instance, "observation"))
        self.pending_query = list(self.chat)

    def append(self, *messages: HistoryMessage) -> None:
        self.history += messages
        self.chat += [m.chat() for m in messages]

    def messages(self) -> list[dict[str, Any]]:
        """The conversation in the chat API's shape (the recording keys stripped)."""
        return [dict(m) for m in self.chat]

    def count_call(self, reply: Completion) -> None:
        self.stats.api_calls += 1
        self.stats.tokens_sent += reply.prompt_tokens
        self.stats.tokens_received += reply.completion_tokens
        self.stats.instance_cost += reply.cost_usd

    def add_step(self, step: Step) -> None:
        a = step.action
        thinking = {"reasoning": step.reply.reasoning} if step.reply.reasoning else {}
        if self.tool_mode:
            calls = [c for c in step.reply.tool_calls if c.get("id") == a.tool_call_id][:1]
            assistant = _msg("assistant", step.reply.text, "action", thought=a.thought, action=a.command,
                             tool_calls=calls, **thinking)
            observation = _msg("tool", step.observation, "observation", tool_call_id=a.tool_call_id)
        else:
            assistant = _msg("assistant", step.reply.text, "action", thought=a.thought, action=a.command, **thinking)
            observation = _msg("user", step.observation, "observation")
        self.append(assistant, observation)
        self.steps.append(TrajectoryStep(
            response=step.reply.text, thought=a.thought, action=a.command, observation=step.observation,
            execution_time=round(step.execution_time, 4),
            state=StepState(step=len(self.steps) + 1, score=step.score),
            query=[HistoryMessage(**m) for m in self.pending_query],
            extra_info=StepExtraInfo(format_corrections=step.corrections, tool_call_id=a.tool_call_id,
                                     model_time=round(step.model_time, 4), **thinking),
        ))
        self.pending_query = [self.chat[-1]]

    def finish(self, exit_status: str, detail: str, *, submitted: bool) -> None:
        scored = self.last_scored if submitted else None
        self.outcome = TrajectoryInfo(
            **self.start, exit_status=exit_status, exit_detail=detail,
            submission="submission.csv" if scored is not None else None,
            score=scored.value if scored is not None else None,
            metrics=scored.metrics if scored is not None else None,
            validate_scores=self.validate_scores, context_tokens=conversation_tokens(self.chat),
            model_stats=self.stats.model_copy(update={"instance_cost": round(self.stats.instance_cost, 6)}),
        )

    @property
    def info(self) -> TrajectoryInfo:
        """The trajectory's info; there is none before finish()."""
        if self.outcome is None:
            raise RuntimeError("the episode has not finished: no trajectory info yet")
        return self.outcome

    @property
    def submitted(self) -> bool:
        return self.outcome is not None and self.outcome.submission is not None

    def traj(self) -> Trajectory:
        return Trajectory(environment=self.environment, trajectory=list(self.steps), history=list(self.history),
                          info=self.info, replay_config=self.replay_config)
