"""Prompt templates: one Jinja file per role and purpose, rendered with StrictUndefined."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("prompts", "."),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str, ensure_ascii=False)


@cache
def _template(name: str) -> jinja2.Template:
    return _env.get_template(f"{name}.j2")


def render(name: str, /, **context: Any) -> str:
    """Render prompts/<name>.j2; a missing variable raises instead of rendering empty."""
    return _template(name).render(**context).strip() + "\n"


def names() -> list[str]:
    return sorted(n.removesuffix(".j2") for n in _env.list_templates() if n.endswith(".j2"))
