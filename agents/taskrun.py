"""Running a task bundle in the sandbox: prepare the data, run code, evaluate with the hidden answers.

Layout inside the sandbox: the workspace is the cwd; the raw dataset (with the test labels) is mounted
read-only at /gf/raw only for the prepare step; the hidden answers dir is mounted at /gf/hidden only for
prepare (read-write) and evaluate (read-only). Agent commands never see either.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from domain.tasks import TaskBundle
from sandbox import Backend, ExecResult, Limits, Mount, Session

RAW, HIDDEN = "/gf/raw", "/gf/hidden"
TASK_ENV = {"GF_RAW_DIR": RAW, "GF_HIDDEN_DIR": HIDDEN}
EVAL_CMD = "python evaluate.py --submission_file submission.csv"


class StepFailed(Exception):
    """A step of the bundle failed; the message is the error text a fixer can act on."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"[{step}] {message}")
        self.step = step


@dataclass
class Score:
    metrics: dict[str, float]
    value: float


@dataclass
class Workspace:
    """A sandbox session over a prepared task workspace, with its hidden answers dir."""

    session: Session
    bundle: TaskBundle
    hidden_dir: Path
    runtime_s: float = 0.0
    log: list[tuple[str, ExecResult]] = field(default_factory=list)

    async def run(self, step: str, command: str, *, timeout: float | None = None, hidden: bool = False,
                  raw_dir: Path | None = None, hidden_writable: bool = False) -> ExecResult:
        mounts = []
        if raw_dir is not None:
            mounts.append(Mount(raw_dir, RAW, read_only=True))
        if hidden:
            mounts.append(Mount(self.hidden_dir, HIDDEN, read_only=not hidden_writable))
        result = await self.session.exec(command, timeout=timeout, env=TASK_ENV if mounts else None, mounts=mounts)
        self.runtime_s += result.duration_s
        self.log.append((step, result))
        return result

    async def evaluate(self) -> Score:
        """Score submission.csv with the hidden answers. Raises StepFailed with the reason."""
        result = await self.run("evaluate", EVAL_CMD, timeout=120, hidden=True)
        require_ok("evaluate", result)
        metrics = parse_metrics(result.stdout)
        return Score(metrics=metrics, value=priority(metrics, self.bundle.metric))

    async def close(self) -> None:
        await self.session.close()


async def open_workspace(backend: Backend, bundle: TaskBundle, raw_dir: Path, workdir: Path,
                         limits: Limits | None = None, *, files: list[str] | None = None) -> Workspace:
    """Open a session, write the bundle's files and run prepare.py. `files` limits what is copied in."""
    workspace, hidden = workdir / "workspace", workdir / "hidden"
    workspace.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    hidden.chmod(0o777)  # the sandbox user writes the answers here during prepare
    session = await backend.open(workspace, limits or Limits(wall_time_s=float(bundle.training_timeout)))
    ws = Workspace(session=session, bundle=bundle, hidden_dir=hidden)
    try:
        for name, content in bundle.files.items():
            await session.put(name, content.encode())
        result = await ws.run("prepare", "python prepare.py", timeout=bundle.training_timeout, raw_dir=raw_dir,
                              hidden=True, hidden_writable=True)
        require_ok("prepare", result)
        await check_no_leak(ws)
        keep = set(files) if files is not None else None
        if keep is not None:
            for name in bundle.files:
                if name not in keep:
                    await session.exec(f"rm -f {shlex.quote(name)}")
    except BaseException:
        await session.close()
        raise
    return ws


async def check_no_leak(ws: Workspace) -> None:
    """The test labels must not be in the workspace: data/test.csv has no answer column besides id."""
    answers_path = ws.hidden_dir / "answers.csv"
    if not answers_path.exists():
        raise StepFailed("prepare", f"prepare.py did not write the hidden answers to {HIDDEN}/answers.csv")
    answer_cols = next(csv.reader(io.StringIO(answers_path.read_text()[:10_000])), [])
    label_cols = [c for c in answer_cols if c != "id"]
    try:
        test_head = (await ws.session.get("data/test.csv"))[:20_000].decode(errors="replace")
    except (FileNotFoundError, OSError):
        raise StepFailed("prepare", "prepare.py did not write data/test.csv") from None
    test_cols = next(csv.reader(io.StringIO(test_head)), [])
    leaked = [c for c in label_cols if c in test_cols]
    if leaked:
        raise StepFailed("prepare", f"test labels leaked into the workspace: data/test.csv has column(s) {leaked}")


def check_submission_format(sample: str, submission: bytes) -> None:
    want = next(csv.reader(io.StringIO(sample)), [])
    got = next(csv.reader(io.StringIO(submission[:10_000].decode(errors="replace"))), [])
    if want != got:
        raise StepFailed("submission", f"submission.csv columns {got} differ from sample_submission.csv {want}")


def require_ok(step: str, r: ExecResult) -> None:
    if r.timed_out:
        raise StepFailed(step, f"timed out after {r.duration_s:.0f}s\n{tail(r.stderr)}")
    if r.oom_killed:
        raise StepFailed(step, "killed: out of memory")
    if r.exit_code != 0:
        raise StepFailed(step, f"exit code {r.exit_code}\nSTDERR:\n{tail(r.stderr)}\nSTDOUT:\n{tail(r.stdout, 1500)}")


def tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def parse_metrics(stdout: str) -> dict[str, float]:
    """evaluate.py's output must be exactly one JSON object of finite numbers."""
    text = stdout.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepFailed("evaluate", f"output is not a single JSON object ({exc}): {text[:500]!r}") from None
    if not isinstance(value, dict) or not value:
        raise StepFailed("evaluate", f"output is not a non-empty JSON object: {text[:500]!r}")
    out: dict[str, float] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise StepFailed("evaluate", f"metric {k!r} is not a finite number: {v!r}")
        out[k] = float(v)
    return out


def priority(metrics: dict[str, float], metric: str) -> float:
    if metric not in metrics:
        raise StepFailed("evaluate", f"the priority metric {metric!r} is missing from {sorted(metrics)}")
    return metrics[metric]


def better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b
