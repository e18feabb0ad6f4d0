"""The export's README.md: the table of every task in DIR and how to load and score them, rendered from the
Jinja template README.md.j2 next to this module (StrictUndefined: a missing variable is an error, never an
empty cell)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import jinja2

from gymforge.config import Settings
from gymforge.mlgym.layout import HIDDEN_ENV
from gymforge.mlgym.records import EXPORT_STATUSES, Exported

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
        tasks=tasks, when=when, db_path=s.db_path, statuses=EXPORT_STATUSES, hidden_env=HIDDEN_ENV)
