"""The episode's record, in SWE-agent's `.traj` shape: trajectory steps, history, info, replay_config.

`history` is the clean conversation (what the model saw, minus replies that needed a format correction;
those are kept in the step's extra_info). The messages sent to the model are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.llm import Completion
from agents.solver.actions import Action
from domain.tokens import conversation_tokens

API_KEYS = ("role", "content", "tool_calls", "tool_call_id")


@dataclass
class ModelStats:
    instance_cost: float = 0.0
    tokens_sent: int = 0
    tokens_received: int = 0
    api_calls: int = 0


@dataclass(frozen=True)
class Step:
    reply: Completion
    action: Action
    observation: str
    execution_time: float
    score: float | None
    corrections: list[dict[str, str]]
    model_time: float


def _msg(role: str, content: str, message_type: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "message_type": message_type, "agent": "solver", **extra}


@dataclass
class Recorder:
    system: str
    instance: str
    info: dict[str, Any]  # task_id, attempt, metric, direction, baseline_score, model
    replay_config: dict[str, Any]
    environment: str
    tool_mode: bool = False
    stats: ModelStats = field(default_factory=ModelStats)
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    validate_scores: list[float | None] = field(default_factory=list)
    last_scored: Any = None  # loop.Scored of the last successful validate/submit/autosubmit
    pending_query: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.history = [_msg("system", self.system, "system_prompt"), _msg("user", self.instance, "observation")]
        self.pending_query = list(self.history)

    def messages(self) -> list[dict[str, Any]]:
        """The conversation in the chat API's shape (the recording keys stripped)."""
        return [{k: m[k] for k in API_KEYS if k in m} for m in self.history]

    def count_call(self, reply: Completion) -> None:
        self.stats.api_calls += 1
        self.stats.tokens_sent += reply.prompt_tokens
        self.stats.tokens_received += reply.completion_tokens
        self.stats.instance_cost += reply.cost_usd

    def add_step(self, step: Step) -> None:
        a = step.action
        assistant = _msg("assistant", step.reply.text, "action", thought=a.thought, action=a.command)
        if self.tool_mode:
            assistant["tool_calls"] = [c for c in step.reply.tool_calls if c.get("id") == a.tool_call_id][:1]
            observation = _msg("tool", step.observation, "observation", tool_call_id=a.tool_call_id)
        else:
            observation = _msg("user", step.observation, "observation")
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

    @property
    def submitted(self) -> bool:
        return self.info.get("submission") is not None

    def traj(self) -> dict[str, Any]:
        return {"environment": self.environment, "trajectory": self.steps, "history": self.history,
                "info": self.info, "replay_config": self.replay_config}
