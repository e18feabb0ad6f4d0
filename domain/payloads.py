"""The payload of every event type gymforge publishes, and the registry the bus decodes them with.

An event type is the subject without the `gf.` prefix (`topic.proposed`, ...); each payload model states
its own (`event_type`), and the registry is derived from the models. Dead letters (`dead.<role>`) are the
bus's own record. Pure data: no I/O here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from domain.tasks import DataRef, Difficulty, Direction, Payload, TaskBundle, TaskType
from domain.trajectory import Trajectory


class EventPayload(Payload):
    """A payload that is an event of its own: `event_type` names its subject."""

    event_type: ClassVar[str]


# --- topics ---------------------------------------------------------------------------------


class TopicRequested(EventPayload):
    event_type = "topic.requested"
    domain: str = Field(min_length=1, max_length=200)
    count: int = Field(ge=1, le=10_000)
    difficulty: Difficulty = "medium"
    topic: str | None = Field(None, min_length=1, max_length=500)  # a given topic (count 1): datasets wanted for it
    task_type: TaskType | None = None  # the given topic's task type, when known

    @model_validator(mode="after")
    def _one_given_topic(self) -> TopicRequested:
        if self.topic is not None and self.count != 1:
            raise ValueError("a request with a given topic asks for that one topic: count must be 1")
        return self


class DatasetCandidate(Payload):
    id: str = Field(min_length=1)
    source: Literal["builtin", "local", "hub"] = "builtin"
    input_columns: list[str] = Field(default_factory=list)
    label_column: str | None = None


class TopicProposed(EventPayload):
    event_type = "topic.proposed"
    title: str = Field(min_length=1, max_length=500)
    domain: str = "general"
    description: str = ""
    task_type: TaskType | None = None
    difficulty: Difficulty = "medium"
    candidate_datasets: list[DatasetCandidate] = Field(default_factory=list)


# --- datasets -------------------------------------------------------------------------------


class DatasetVerified(EventPayload):
    event_type = "dataset.verified"
    topic: TopicProposed
    dataset_id: str
    source: Literal["builtin", "local", "hub"]
    task_type: TaskType
    description: str = ""
    license: str | None = None
    features: dict[str, str]  # column -> type name
    input_columns: list[str]
    label_column: str
    split_sizes: dict[str, int]
    sample_rows: list[dict[str, Any]] = Field(default_factory=list)
    data: DataRef
    passed_over: list[str] = Field(default_factory=list)  # why each candidate tried before this one was refused


class DatasetRejected(EventPayload):
    event_type = "dataset.rejected"
    topic: TopicProposed
    reasons: list[str] = Field(min_length=1)


# --- tasks ----------------------------------------------------------------------------------


class TaskDrafted(EventPayload):
    event_type = "task.drafted"
    bundle: TaskBundle
    revision: int = Field(ge=0)
    topic_title: str = ""
    answers_error: str | None = None  # the error this revision was written to fix


class TaskValidated(EventPayload):
    event_type = "task.validated"
    bundle: TaskBundle
    revision: int
    baseline_score: float
    baseline_metrics: dict[str, float]
    runtime_s: float
    rounds: int


class TaskRejected(EventPayload):
    event_type = "task.rejected"
    task_id: str
    revision: int
    rounds: int
    reason: str
    last_error: str = ""


class SolveRequested(EventPayload):
    event_type = "solve.requested"
    bundle: TaskBundle
    attempt: int = Field(ge=0)
    attempts_total: int = Field(ge=1)
    baseline_score: float


# --- trajectories ---------------------------------------------------------------------------


class TrajectoryCompleted(EventPayload):
    event_type = "trajectory.completed"
    task_id: str
    attempt: int
    attempts_total: int
    exit_status: str
    submitted: bool
    score: float | None = None
    baseline_score: float
    metric: str
    direction: Direction
    validate_scores: list[float | None] = Field(default_factory=list)
    tokens: int = 0
    steps: int = 0
    trajectory: Trajectory  # SWE-agent .traj shape


class TrajectoryAccepted(EventPayload):
    event_type = "trajectory.accepted"
    task_id: str
    attempt: int
    trajectory_event_id: str
    score: float
    gain: float
    tokens: int


class TrajectoryRejected(EventPayload):
    event_type = "trajectory.rejected"
    task_id: str
    attempt: int
    trajectory_event_id: str
    reasons: list[str]


class TaskGraded(EventPayload):
    event_type = "task.graded"
    task_id: str
    attempts: int
    accepted: int
    solve_rate: float
    best_score: float | None
    baseline_score: float
    gain: float | None


# --- operations -----------------------------------------------------------------------------


class Usage(EventPayload):
    event_type = "usage"
    role: str
    model: str
    endpoint: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    retries: int = 0
    cached_tokens: int = 0  # of prompt_tokens, served from the provider's prefix cache (billed at a discount)
    reasoning_tokens: int = 0  # of completion_tokens, spent thinking


EVENTS: tuple[type[EventPayload], ...] = (
    TopicRequested, TopicProposed, DatasetVerified, DatasetRejected, TaskDrafted, TaskValidated, TaskRejected,
    SolveRequested, TrajectoryCompleted, TrajectoryAccepted, TrajectoryRejected, TaskGraded, Usage,
)
PAYLOADS: dict[str, type[EventPayload]] = {m.event_type: m for m in EVENTS}
