"""debugger: `task.drafted` rev n -> `task.validated` + K × `solve.requested`, or rev n+1, or rejected.

Runs data preparation, the baseline and the evaluation in the sandbox and checks exit codes, one JSON
object holding the priority metric, a finite score, the runtime limit and the submission's format. On
failure the model's fix goes out as the next revision (with the error it answers); after N rounds the
task is rejected with the last error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Sequence
from functools import partial
from pathlib import Path

from pydantic import Field

from agents.artifacts import fetch_dataset
from agents.coder import card_for_bundle, coder_system
from agents.llm_agent import LLMAgent
from agents.model_options import ModelSettings
from agents.replies import ReplyError, explanation
from agents.reply_blocks import refuse_unclosed, scan
from agents.reply_checks import WHOLE_FILES, refuse_diffs, refuse_elisions, refuse_stray_code
from agents.reply_files import read_files
from agents.runtime import AgentContext, Emit
from agents.taskrun import Score, StepFailed, check_submission_format, open_workspace, require_ok
from bus import Event, Transient
from domain.payloads import SolveRequested, TaskDrafted, TaskRejected, TaskValidated
from domain.tasks import TaskBundle
from prompts import render
from sandbox import Backend, SandboxSettings, SandboxUnavailable, backend_for


def parse_fix(text: str, known: Collection[str]) -> tuple[dict[str, str], str]:
    """(the changed files, whole, by name; the EXPLANATION line). `known`: the bundle's file names. A fix
    must change at least one of them; a diff, an elided body or another file name is refused."""
    s = scan(text)
    refuse_unclosed(s)
    refuse_diffs(s)
    given = read_files(s, known)
    refuse_stray_code(s, given.named)
    changed = given.contents()
    unknown = [name for name in changed if name not in known]
    if unknown:
        raise ReplyError(f"{unknown} is not a file of the task, whose files are {sorted(known)}: send only "
                         "files of the task, each whole under a line `FILE: <name>`")
    if not changed:
        raise ReplyError(f"the reply changes no file: {WHOLE_FILES} (the task's files: {sorted(known)}), "
                         "and a line `EXPLANATION: <one line>`")
    refuse_elisions(changed)
    return changed, explanation(s)


class DebuggerSettings(ModelSettings):
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # the shared `sandbox_*` section
    rounds: int = Field(3, ge=1, alias="debug_rounds", description="runs of a task (drafts + fixes) before it is rejected")
    attempts: int = Field(4, ge=1, alias="attempts", description="solve attempts requested per validated task")


class DebuggerAgent(LLMAgent):
    role = "debugger"
    consumes = (TaskDrafted,)
    produces = (TaskValidated, SolveRequested, TaskDrafted, TaskRejected)
    ack_wait_s = 120.0
    default_concurrency = 2
    runs_task_code = True
    Settings = DebuggerSettings
    settings: DebuggerSettings

    def __init__(self, ctx: AgentContext, settings: DebuggerSettings | None = None) -> None:
        super().__init__(ctx, settings)
        self.max_rounds = self.settings.rounds
        self.attempts = self.settings.attempts
        self.backend: Backend = backend_for(self.settings.sandbox)

    async def work(self, event: Event) -> Sequence[Emit]:
        d = event.payload_as(TaskDrafted)
        b = d.bundle
        raw = await fetch_dataset(self.ctx.bus, b.data, self.ctx.data_dir / "cache" / "datasets")
        try:
            score, runtime = await self.run_bundle(b, raw)
        except StepFailed as failure:
            return await self.after_failure(d, raw, str(failure))
        except SandboxUnavailable as exc:  # the machine's sandbox, not the task: retried later
            raise Transient(f"sandbox unavailable: {exc}") from None
        validated = TaskValidated(bundle=b, revision=d.revision, baseline_score=score.value,
                                  baseline_metrics=score.metrics, runtime_s=round(runtime, 3), rounds=d.revision + 1)
        solves = [Emit(SolveRequested(bundle=b, attempt=i, attempts_total=self.attempts,
                                      baseline_score=score.value), key=i)
                  for i in range(self.attempts)]
        return [Emit(validated), *solves]

    async def run_bundle(self, b: TaskBundle, raw: Path) -> tuple[Score, float]:
        workdir = Path(tempfile.mkdtemp(prefix=f"debug-{b.task_id}-", dir=self.ctx.data_dir))
        try:
            ws = await open_workspace(self.backend, b, raw, workdir,
                                      self.settings.sandbox.limits(float(b.training_timeout)))
            try:
                result = await ws.run("baseline", "python baseline.py", timeout=b.training_timeout)
                require_ok("baseline", result)
                try:
                    submission = await ws.session.get("submission.csv")
                except OSError:
                    raise StepFailed("baseline", "baseline.py did not write submission.csv") from None
                check_submission_format(b.files.get("sample_submission.csv", ""), submission)
                score = await ws.evaluate()
                if ws.runtime_s > b.training_timeout:
                    raise StepFailed("baseline", f"runtime {ws.runtime_s:.0f}s exceeds training_timeout")
                return score, ws.runtime_s
            finally:
                await ws.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def after_failure(self, d: TaskDrafted, raw: Path, error: str) -> Sequence[Emit]:
        b = d.bundle
        if d.revision + 1 >= self.max_rounds:
            return [Emit(TaskRejected(task_id=b.task_id, revision=d.revision, rounds=d.revision + 1,
                                      reason=f"still failing after {d.revision + 1} round(s)",
                                      last_error=error[-4000:]))]
        prompt = render("fix_task", error=error[-6000:], card=card_for_bundle(b, raw), files=b.files,
                        round=d.revision + 1, max_rounds=self.max_rounds)
        messages = [{"role": "system", "content": coder_system(self.settings.sandbox.task_runtime)},
                    {"role": "user", "content": prompt}]
        try:
            changed, why = await self.ask(messages, "fix_task", partial(parse_fix, known=tuple(b.files)))
        except ReplyError as exc:
            return [Emit(TaskRejected(task_id=b.task_id, revision=d.revision, rounds=d.revision + 1,
                                      reason="debugger reply unusable", last_error=str(exc)))]
        fixed = b.model_copy(update={"files": {**b.files, **changed}})
        return [Emit(TaskDrafted(bundle=fixed, revision=d.revision + 1, topic_title=d.topic_title,
                                 answers_error=f"{error[-3000:]}\nFIX: {why}"))]
