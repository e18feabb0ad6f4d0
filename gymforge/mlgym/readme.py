"""The export's README.md: the table of every task in DIR and how to load and score them, rendered from the
Jinja template README.md.j2 next to this module (StrictUndefined: a missing variable is an error, never an
empty cell); and mlgym_tasks.py, the tasks' entries for MLGym's TASKS dict (priority metric, direction)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache

import jinja2

from gymforge.config import Settings
from gymforge.mlgym.layout import HIDDEN_ENV, TASKS_MODULE
from gymforge.mlgym.records import EXPORT_STATUSES, Exported
from gymforge.mlgym.scoring import MLGYM_ANSWERS

TEMPLATE = "README.md.j2"


def cell(text: object) -> str:
    """One Markdown table cell: whitespace collapsed, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gymforge.mlgym", "."),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cell"] = cell
    env.filters["g6"] = lambda value: f"{value:.6g}"
    return env


def readme(tasks: list[Exported], s: Settings) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return environment().get_template(TEMPLATE).render(
        tasks=tasks, when=when, db_path=s.db_path, statuses=EXPORT_STATUSES, hidden_env=HIDDEN_ENV,
        answers_mount=MLGYM_ANSWERS, tasks_module=TASKS_MODULE)


TASKS_DOC = '''"""The exported tasks' entries for MLGym's TASKS dict (mlgym/evaluation/utils.py), from which its
evaluation scripts (scripts/evaluation/get_ranks.py: performance ratios, AUP) take each task's priority
metric and direction: `from mlgym_tasks import GYMFORGE_TASKS; TASKS.update(GYMFORGE_TASKS)`.
Written by `gymforge export mlgym`."""

'''


def tasks_entries(tasks: list[Exported]) -> dict[str, dict[str, str]]:
    return {t.task_id: {"name": t.name, "shortname": t.name, "priority_metric": t.metric,
                        "metric_direction": t.direction} for t in tasks}


def tasks_module(tasks: list[Exported]) -> str:
    """mlgym_tasks.py: GYMFORGE_TASKS as a literal (JSON of strings is a Python literal)."""
    return f"{TASKS_DOC}GYMFORGE_TASKS = {json.dumps(tasks_entries(tasks), indent=4, ensure_ascii=False)}\n"
