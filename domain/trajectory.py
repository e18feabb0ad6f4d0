"""The trajectory of one solver episode, typed; its JSON form is SWE-agent's `.traj` shape.

This is the stored record (gymforge's: typed step state, gymforge's replay settings). `export traj`
converts it to exactly what SWE-agent reads (gymforge/swe_traj.py: a RunSingleConfig replay_config, string
step states), so trajectories stored by any version export alike.

`Trajectory.model_dump(mode="json")` is the .traj object, key for key: the top level `environment`,
`trajectory` (steps), `history` (messages), `info`, `replay_config`. A few keys of a history message or a
step's extra_info are written only by some records (an assistant turn has `thought` and `action`, a tool
answer `tool_call_id`); such a key is in the JSON exactly when it was given (set), null included, so a
stored trajectory loads and dumps back unchanged.

Unknown keys are refused, as in every payload (a trajectory travels inside `trajectory.completed`), except
inside the two parts that stay plain JSON: `replay_config` (what a replay needs) and the provider's
`tool_calls` objects.

Pure data: no I/O here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import SerializerFunctionWrapHandler, model_serializer

from domain.tasks import Direction, Payload

Role = Literal["system", "user", "assistant", "tool"]
Interface = Literal["bash", "mlgym"]  # what the solver offered the model: shell commands, or MLGym's agent interface
CHAT_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id"})


class _OptionalKeys(Payload):
    """A record some of whose keys (`OPTIONAL`) appear in its JSON only when they were given."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _given_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in self.OPTIONAL - self.model_fields_set:
            data.pop(name, None)
        return data


class HistoryMessage(_OptionalKeys):
    """One message of the conversation: a chat message (role, content, tool_calls, tool_call_id) plus the
    recording's keys. The solver writes `message_type` (system_prompt | observation | action) and `agent`
    on every message, `thought` and `action` on assistant turns, `tool_calls` on assistant turns and
    `tool_call_id` on tool answers in tool-call mode, and `reasoning` on an assistant turn whose model
    thought aloud (its reasoning field or `<think>` block: never part of `content`, and never sent back to
    the model). A step's `query` holds plain chat messages."""

    OPTIONAL = frozenset({"message_type", "agent", "thought", "action", "tool_calls", "tool_call_id", "reasoning"})

    role: Role
    content: str
    message_type: str | None = None
    agent: str | None = None
    thought: str | None = None
    action: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # the provider's tool-call objects, verbatim
    tool_call_id: str | None = None
    reasoning: str | None = None  # the model's thinking before this reply (assistant turns), when it showed any

    def chat(self) -> dict[str, Any]:
        """The message in the chat API's shape: role, content, and tool_calls / tool_call_id when given."""
        return self.model_dump(include=CHAT_KEYS)


class FormatCorrection(Payload):
    """A reply that had no usable action, and why (shown to the model as the correction)."""

    reply: str
    problem: str


class StepState(Payload):
    step: int  # the solver counts from 1
    score: float | None  # the validate/submit score this step got, else None


class StepExtraInfo(_OptionalKeys):
    OPTIONAL = frozenset({"model_time", "reasoning"})

    format_corrections: list[FormatCorrection]  # replies re-asked before this step's action
    tool_call_id: str | None  # the tool call answered (tool-call mode), else None
    model_time: float | None = None  # seconds spent waiting for the model, corrections included
    reasoning: str | None = None  # the model's thinking before the step's reply (not in `response`)


class TrajectoryStep(Payload):
    response: str  # the model's reply, as written
    thought: str
    action: str  # the command run (or validate / submit)
    observation: str
    execution_time: float  # seconds
    state: StepState
    query: list[HistoryMessage]  # the messages sent since the previous step (all of them for the first)
    extra_info: StepExtraInfo


class ModelStats(Payload):
    instance_cost: float = 0.0  # USD
    tokens_sent: int = 0
    tokens_received: int = 0
    api_calls: int = 0


class TrajectoryInfo(_OptionalKeys):
    """The episode's outcome. `interface` is written by solvers that record it (older trajectories have no
    such key: they were all bash)."""

    OPTIONAL = frozenset({"interface"})

    task_id: str
    attempt: int
    metric: str
    direction: Direction
    baseline_score: float
    model: str
    interface: Interface = "bash"
    exit_status: str  # SWE-agent's: submitted, exit_cost, ..., or "submitted (<limit's status>)" on autosubmit
    exit_detail: str
    submission: str | None  # "submission.csv" when a scored submission ended the episode
    score: float | None
    metrics: dict[str, float] | None
    validate_scores: list[float | None]  # one per validate, None when it could not be scored
    context_tokens: int  # the history's estimated size (domain.tokens)
    model_stats: ModelStats


class Trajectory(Payload):
    """The episode's record. `history` is the clean conversation (what the model saw, minus replies that
    needed a format correction: those are in the steps' extra_info)."""

    environment: str
    trajectory: list[TrajectoryStep]
    history: list[HistoryMessage]
    info: TrajectoryInfo
    replay_config: dict[str, Any]
