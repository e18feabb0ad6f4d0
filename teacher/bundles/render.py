"""The Jinja environment for the bundle templates (StrictUndefined: a missing variable is an error)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
_WRAP_AT = 88


def py_literal(value: Any, indent: int = 0) -> str:
    """A Python literal for a template value; long lists are written one item per line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        items = [py_literal(item) for item in value]
        one_line = "[" + ", ".join(items) + "]"
        if indent + len(one_line) <= _WRAP_AT:
            return one_line if isinstance(value, list) else "(" + one_line[1:-1] + ("," if len(items) == 1 else "") + ")"
        pad = " " * (indent + 4)
        body = "".join(f"{pad}{item},\n" for item in items)
        return f"[\n{body}{' ' * indent}]" if isinstance(value, list) else f"(\n{body}{' ' * indent})"
    raise TypeError(f"no Python literal for {type(value).__name__}")


def doc_text(value: Any) -> str:
    """Card text made safe to embed in docstrings and in descriptions that are str.format()-ed."""
    text = str(value).replace("\\", "/").replace('"""', "'''")
    return text.replace("{", "(").replace("}", ")")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = py_literal
    env.filters["doc"] = doc_text
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
