"""The exported task scored the way MLGym scores it, before it is written out: in the prepared sandbox
workspace the baseline runs, then `python evaluate.py --submission_file submission.csv` with GF_HIDDEN_DIR
unset and the hidden answers mounted at /answers (where MLGym's `container_mounts` puts the export's
data/<task_id>/answers). MLGym `json.loads` stdout and stderr together, so both together must be exactly one
JSON object of finite numbers holding the task's metric; anything else makes the task unusable, with the
reason, rather than a task MLGym would fail to score (or score from a stray line)."""

from __future__ import annotations

from pathlib import Path

from agents.taskrun import StepFailed, Workspace, parse_metrics, tail
from gymforge.mlgym.records import TaskUnusable
from sandbox import ExecResult, Mount

MLGYM_ANSWERS = "/answers"
MLGYM_EVAL = "python evaluate.py --submission_file submission.csv"


async def score_like_mlgym(ws: Workspace, hidden: Path) -> dict[str, float]:
    """Run the baseline, then evaluate.py as MLGym does; the metrics it printed."""
    b = ws.bundle
    base = await ws.session.exec("python baseline.py", timeout=float(b.training_timeout))
    if not base.ok:
        raise TaskUnusable(f"the baseline failed when re-run for the export: {why(base)}")
    r = await ws.session.exec(MLGYM_EVAL, timeout=120.0, mounts=[Mount(hidden, MLGYM_ANSWERS, read_only=True)])
    return mlgym_metrics(r, b.metric)


def mlgym_metrics(r: ExecResult, metric: str) -> dict[str, float]:
    """What MLGym's CSVSubmissionTasks reads from an evaluate.py run: the combined output as one JSON object."""
    combined = r.stdout + r.stderr
    if not r.ok:
        raise TaskUnusable(f"evaluate.py with the answers at {MLGYM_ANSWERS} and no GF_HIDDEN_DIR (as in MLGym) "
                           f"failed: {why(r)}")
    try:
        metrics = parse_metrics(combined)
    except StepFailed as exc:
        raise TaskUnusable(f"MLGym could not read evaluate.py's output (stdout and stderr together): {exc}") from None
    if metric not in metrics:
        raise TaskUnusable(f"evaluate.py does not print the task's metric {metric!r} (it prints {sorted(metrics)})")
    return metrics


def why(r: ExecResult) -> str:
    if r.timed_out:
        return f"timed out after {r.duration_s:.0f}s"
    if r.oom_killed:
        return "killed: out of memory"
    return f"exit code {r.exit_code}: {tail((r.stderr or r.stdout).strip(), 500)}"


def baseline_scores(recorded: dict[str, float], fresh: dict[str, float]) -> dict[str, float]:
    """Every metric evaluate.py prints, as MLGym's own task configs list them: the recorded (validated)
    value where there is one, the re-run's for a metric the record lacks (an older record kept only the
    task's metric). A recorded metric evaluate.py no longer prints is an error, not a silent drop."""
    gone = sorted(set(recorded) - set(fresh))
    if gone:
        raise TaskUnusable(f"evaluate.py no longer prints the recorded metric(s) {gone} (it prints {sorted(fresh)})")
    return {name: float(recorded.get(name, value)) for name, value in fresh.items()}
