"""A small trajectory in the shape the solver records (thought_action mode), for tests that need a valid
`trajectory.completed` payload without running an episode."""

from __future__ import annotations

from typing import Any

from domain.tokens import conversation_tokens
from domain.trajectory import (
    HistoryMessage,
    ModelStats,
    Role,
    StepExtraInfo,
    StepState,
    Trajectory,
    TrajectoryInfo,
    TrajectoryStep,
)


def _msg(role: Role, content: str, message_type: str, **extra: Any) -> HistoryMessage:
    return HistoryMessage(role=role, content=content, message_type=message_type, agent="solver", **extra)


def make_trajectory(task_id: str, attempt: int, steps: list[tuple[str, str, str, float | None]], *,
                    score: float | None = None, exit_status: str = "submitted", metric: str = "accuracy",
                    direction: str = "maximize", baseline: float = 0.5) -> Trajectory:
    """`steps`: (thought, action, observation, score of that step). `score` is the submitted score."""
    history = [_msg("system", "You are an ML research agent.", "system_prompt"),
               _msg("user", f"Task {task_id}: beat the baseline.", "observation")]
    recorded = []
    for i, (thought, action, observation, step_score) in enumerate(steps):
        reply = f"THOUGHT: {thought}\n\n```bash\n{action}\n```\n"
        query = [m.chat() for m in (history if i == 0 else history[-1:])]
        recorded.append(TrajectoryStep(
            response=reply, thought=thought, action=action, observation=observation, execution_time=0.5,
            state=StepState(step=i + 1, score=step_score), query=[HistoryMessage(**m) for m in query],
            extra_info=StepExtraInfo(format_corrections=[], tool_call_id=None, model_time=0.1)))
        history += [_msg("assistant", reply, "action", thought=thought, action=action),
                    _msg("user", observation, "observation")]
    info = TrajectoryInfo(
        task_id=task_id, attempt=attempt, metric=metric, direction=direction,  # type: ignore[arg-type]
        baseline_score=baseline, model="scripted", exit_status=exit_status, exit_detail="",
        submission="submission.csv" if score is not None else None, score=score,
        metrics={metric: score} if score is not None else None,
        validate_scores=[s[3] for s in steps if s[1] == "validate"],
        context_tokens=conversation_tokens(m.chat() for m in history),
        model_stats=ModelStats(tokens_sent=100 * len(steps), tokens_received=20 * len(steps), api_calls=len(steps)))
    return Trajectory(environment="gymforge:bwrap", trajectory=recorded, history=history, info=info,
                      replay_config={"action_format": "thought_action", "seed": attempt})
