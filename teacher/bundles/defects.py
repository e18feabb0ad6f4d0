"""Realistic bugs planted in a first draft, so that the debugger's fix loop has real work to do."""

from __future__ import annotations

from teacher.bundles.card import Schema
from teacher.bundles.fix import closest_column
from teacher.bundles.render import py_literal
from teacher.bundles.specs import pick

DEFECTS = ("wrong_column", "missing_import", "malformed_output")
Files = dict[str, str]

# Imports whose removal breaks a file at once: the alias is used in annotations or on the main path.
_IMPORTS = ("import pandas as pd", "import numpy as np")
# A human line evaluate.py "helpfully" prints before its JSON.
_CHATTY_PRINTS = (
    'print(f"Scored {len(predictions)} predictions")',
    'print("Submission is valid.")',
    'print("Evaluation results:")',
)


def resolve_defect(defect: str | None, task_id: str) -> str | None:
    if defect is None:
        return None
    if defect == "auto":
        return pick(task_id, "defect", DEFECTS)
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; expected one of {', '.join(DEFECTS)} or 'auto'")
    return defect


def inject_defect(files: Files, schema: Schema, defect: str, task_id: str) -> Files:
    planters = {
        "wrong_column": _wrong_column,
        "missing_import": _missing_import,
        "malformed_output": _malformed_output,
    }
    return planters[defect](dict(files), schema, task_id)


def misspellings(name: str, columns: list[str]) -> list[str]:
    """Typos of a column name (swapped or dropped letters) that still point back to it unambiguously."""
    letters = [i for i, char in enumerate(name) if char.isalpha()]
    swaps = [name[:i] + name[i + 1] + name[i] + name[i + 2 :] for i in letters if i + 1 in letters]
    drops = [name[:i] + name[i + 1 :] for i in letters if i > 0]
    typos = [typo for typo in swaps + drops if typo != name]
    good = [t for t in dict.fromkeys(typos) if t not in columns and closest_column(t, columns) == name]
    if len(name) >= 4 and good:
        return good
    # Too short to misspell recognisably: change the case, which a careless writer also does.
    return [t for t in (name.upper(), name.capitalize(), name.lower()) if t != name and t not in columns]


def _wrong_column(files: Files, schema: Schema, task_id: str) -> Files:
    columns = schema.columns
    targets = [
        (name, column)
        for name in ("prepare.py", "baseline.py")
        for column in columns
        if files[name].count(py_literal(column)) == 1
    ]
    start = targets.index(pick(task_id, "wrong_column", targets)) if targets else 0
    for name, column in targets[start:] + targets[:start]:
        typos = misspellings(column, columns)
        if typos:
            files[name] = files[name].replace(py_literal(column), py_literal(pick(task_id, "typo", typos)))
            return files
    raise ValueError(f"no column name to misspell in the {schema.task_type} bundle")


def _missing_import(files: Files, schema: Schema, task_id: str) -> Files:
    targets = [
        (name, line)
        for name in ("prepare.py", "baseline.py", "evaluate.py")
        for line in _IMPORTS
        if line in files[name].splitlines()
    ]
    name, line = pick(task_id, "missing_import", targets)
    files[name] = files[name].replace(line + "\n", "", 1)
    return files


def _malformed_output(files: Files, schema: Schema, task_id: str) -> Files:
    chatty = pick(task_id, "malformed_output", _CHATTY_PRINTS)
    lines = files["evaluate.py"].splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "print(json.dumps(" in line)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at, f"{indent}{chatty}\n")
    files["evaluate.py"] = "".join(lines)
    return files
