"""coder: `dataset.verified` -> `task.drafted` (revision 0), an MLGym-compatible task bundle.

The model writes prepare.py, baseline.py, evaluate.py and a sample submission plus the task's metadata
(priority metric and direction, description with {dataset_docs} and a SUBMISSION FORMAT section). An
unusable reply is re-asked with a format correction, then the task is rejected with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.artifacts import fetch_dataset
from agents.llm_agent import LLMAgent
from agents.model_options import StructuredModelSettings
from agents.reply_blocks import ReplyError, refuse_unclosed, scan
from agents.reply_checks import refuse_diffs, refuse_elisions, refuse_stray_code
from agents.reply_files import plain, read_files
from agents.reply_json import one_json
from agents.runtime import AgentContext, Emit
from bus import Event
from domain.payloads import DatasetVerified, TaskDrafted, TaskRejected
from domain.tasks import TaskBundle
from prompts import render
from sandbox import SandboxSettings
from sandbox.runtimes import Runtime

REQUIRED_FILES = ("prepare.py", "baseline.py", "evaluate.py", "sample_submission.csv")
META_KEYS = {"name", "metric", "direction", "description"}


class TaskMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    direction: str = Field(pattern="^(maximize|minimize)$")
    training_timeout: int = Field(default=300, ge=10, le=4 * 3600)
    description: str = Field(min_length=20)
    dataset_description: str = ""


def meta_of(value: Any) -> dict[str, Any] | None:
    """A JSON object that is the task's metadata (it has one of its keys), else None."""
    return value if isinstance(value, dict) and META_KEYS & value.keys() else None


def json_files(meta: dict[str, Any], from_blocks: dict[str, str]) -> dict[str, str]:
    """The files of a whole-JSON reply's "files" object (structured output): name -> content."""
    given = meta["files"]
    if from_blocks:
        raise ReplyError("the files are given both in the JSON \"files\" object and as FILE blocks: send them once")
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise ReplyError('"files" must be a JSON object mapping each file name to its whole content as a string')
    bad = [name for name in given if not plain(name)]
    if bad:
        raise ReplyError(f"file name(s) {bad} are not plain relative paths: name files like prepare.py")
    return {name: body if body.endswith("\n") else body + "\n" for name, body in given.items()}


def parse_bundle(text: str) -> tuple[TaskMeta, dict[str, str]]:
    s = scan(text)
    refuse_unclosed(s)
    refuse_diffs(s)
    given = read_files(s, REQUIRED_FILES)
    raw = one_json(s, meta_of, 'the task\'s metadata object {"name", "metric", "direction", ...}', skip=given.named)
    found = given.contents()
    if "files" in raw:
        found = json_files(raw, found)
    refuse_stray_code(s, given.named)
    refuse_elisions(found)
    try:
        meta = TaskMeta.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ReplyError(f"task metadata invalid: {'.'.join(map(str, err['loc']))}: {err['msg']}: send one ```json "
                         "object with name, metric, direction (maximize or minimize), training_timeout (seconds), "
                         "description and dataset_description") from None
    missing = [f for f in REQUIRED_FILES if f not in found]
    if missing:
        raise ReplyError(f"missing file(s) {missing}: give each as a line `FILE: <name>` and a fenced block")
    if "SUBMISSION FORMAT" not in meta.description:
        raise ReplyError("the description must end with a 'SUBMISSION FORMAT:' section")
    return meta, found


def task_id_for(dataset_id: str, event_id: str) -> str:
    return f"{re.sub(r'[^a-z0-9]+', '_', dataset_id.lower()).strip('_')[:40]}-{event_id[:8]}"


def card_for(d: DatasetVerified, raw_dir: Path) -> dict[str, Any]:
    """The materialised card, with the columns the verifier settled on."""
    card = json.loads((raw_dir / "card.json").read_text())
    card.update({"name": d.dataset_id, "task_type": d.task_type, "input_columns": d.input_columns,
                 "label_column": d.label_column})
    return card


def card_for_bundle(b: TaskBundle, raw_dir: Path) -> dict[str, Any]:
    card = json.loads((raw_dir / "card.json").read_text())
    card.update({"name": b.dataset_name, "task_type": b.task_type})
    return card


def coder_system(runtime: Runtime) -> str:
    """The system prompt of the coder and the debugger: it lists exactly the task runtime's packages."""
    return render("coder_system", runtime=runtime)


class CoderSettings(StructuredModelSettings):
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # the shared `sandbox_*` section (task_runtime)


class CoderAgent(LLMAgent):
    role = "coder"
    consumes = (DatasetVerified,)
    produces = (TaskDrafted, TaskRejected)
    ack_wait_s = 120.0
    Settings = CoderSettings
    settings: CoderSettings

    def __init__(self, ctx: AgentContext, settings: CoderSettings | None = None) -> None:
        super().__init__(ctx, settings)
        self.runtime = self.settings.sandbox.task_runtime

    async def work(self, event: Event) -> Sequence[Emit]:
        d = event.payload_as(DatasetVerified)
        task_id = task_id_for(d.dataset_id, event.id)
        raw = await fetch_dataset(self.ctx.bus, d.data, self.ctx.data_dir / "cache" / "datasets")
        card = card_for(d, raw)
        messages = [{"role": "system", "content": coder_system(self.runtime)},
                    {"role": "user", "content": render("write_task", topic=d.topic, card=card, task_id=task_id,
                                                       runtime=self.runtime)}]
        try:
            meta, written = await self.ask(messages, "write_task", parse_bundle, schema="task_bundle")
        except ReplyError as exc:
            return [Emit(TaskRejected(task_id=task_id, revision=0, rounds=0, reason="coder reply unusable",
                                      last_error=str(exc)))]
        bundle = TaskBundle(
            task_id=task_id, name=meta.name, task_type=d.task_type, description=meta.description,
            dataset_name=d.dataset_id, dataset_description=meta.dataset_description or d.description,
            metric=meta.metric, direction=meta.direction,  # type: ignore[arg-type]
            training_timeout=meta.training_timeout, files=written, data=d.data,
        )
        return [Emit(TaskDrafted(bundle=bundle, revision=0, topic_title=d.topic.title))]
