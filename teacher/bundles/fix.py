"""fix_bundle: repair a bundle from the text of the error it produced.

The input is what a debugger sees: a traceback (or a message about evaluate.py's output), the files and
the dataset card. Nothing here knows whether or which defect was planted; each rule reads the error the
way a developer would and edits the file the traceback blames.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from teacher.bundles.card import ID_COLUMN
from teacher.bundles.imports import add_import

Files = dict[str, str]
Result = tuple[Files, str]

_FRAME = re.compile(r'File "(?P<path>[^"]+)", line \d+')
_EXCEPTION = re.compile(r"^(?P<kind>[A-Za-z_][\w.]*(?:Error|Exception))(?:: ?(?P<message>.*))?$", re.M)
_UNDEFINED_NAME = re.compile(r"name '(?P<name>\w+)' is not defined")
_NO_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'")
_JSON_SYMPTOMS = ("single JSON object", "one JSON object", "not valid JSON", "JSONDecodeError", "Extra data",
                  "Expecting value")

# Names a script commonly uses without importing them, and the import that defines each.
KNOWN_IMPORTS = {
    "np": "import numpy as np",
    "pd": "import pandas as pd",
    "sm": "import statsmodels.api as sm",
    "torch": "import torch",
    "nn": "from torch import nn",
    "F": "from torch.nn import functional as F",
    "argparse": "import argparse",
    "json": "import json",
    "math": "import math",
    "os": "import os",
    "re": "import re",
    "sys": "import sys",
    "time": "import time",
    "warnings": "import warnings",
    "Path": "from pathlib import Path",
    "NoReturn": "from typing import NoReturn",
    "joblib": "import joblib",
    "train_test_split": "from sklearn.model_selection import train_test_split",
    "Pipeline": "from sklearn.pipeline import Pipeline",
    "make_pipeline": "from sklearn.pipeline import make_pipeline",
    "StandardScaler": "from sklearn.preprocessing import StandardScaler",
    "LogisticRegression": "from sklearn.linear_model import LogisticRegression",
    "Ridge": "from sklearn.linear_model import Ridge",
    "RandomForestClassifier": "from sklearn.ensemble import RandomForestClassifier",
    "RandomForestRegressor": "from sklearn.ensemble import RandomForestRegressor",
    "TfidfVectorizer": "from sklearn.feature_extraction.text import TfidfVectorizer",
}
# Modules that are not in the task runtime (or no longer exist) but have a drop-in replacement.
MODULE_ALTERNATIVES = {
    "sklearn.cross_validation": "sklearn.model_selection",
    "sklearn.grid_search": "sklearn.model_selection",
    "sklearn.learning_curve": "sklearn.model_selection",
    "sklearn.externals.joblib": "joblib",
    "simplejson": "json",
    "ujson": "json",
    "cPickle": "pickle",
}
NAME_ALTERNATIVES = {("sklearn.externals", "joblib"): "import joblib"}


@dataclass(frozen=True)
class ErrorReport:
    kind: str | None  # the last exception's class name, e.g. "KeyError"
    message: str
    file: str | None  # the innermost bundle file in the traceback


def read_error(error: str, files: Iterable[str]) -> ErrorReport:
    names = set(files)
    blamed = [path.rsplit("/", 1)[-1] for path in (m["path"] for m in _FRAME.finditer(error))]
    in_bundle = [name for name in blamed if name in names]
    exceptions = list(_EXCEPTION.finditer(error))
    last = exceptions[-1] if exceptions else None
    return ErrorReport(
        kind=last["kind"].rsplit(".", 1)[-1] if last else None,
        message=(last["message"] or "").strip() if last else "",
        file=in_bundle[-1] if in_bundle else None,
    )


def fix_bundle(files: Files, error: str, card: dict[str, Any]) -> Result:
    """Fixed files and a one-line explanation; the files come back unchanged when no rule applies."""
    report = read_error(error, files)
    if report.kind == "KeyError":
        return _fix_column(dict(files), report, card)
    if report.kind == "NameError":
        return _fix_undefined_name(dict(files), report)
    if report.kind in ("ModuleNotFoundError", "ImportError"):
        return _fix_module(dict(files), report)
    if report.kind == "JSONDecodeError" or any(symptom in error for symptom in _JSON_SYMPTOMS):
        return _fix_output(dict(files))
    what = f"{report.kind}: {report.message}" if report.kind else (error.strip().splitlines() or ["?"])[-1]
    return dict(files), f"could not fix: no rule for {what[:200]}"


# --- KeyError: a misspelt column ------------------------------------------------------------


def card_columns(card: dict[str, Any]) -> list[str]:
    names = [*(card.get("features") or {}), *(card.get("input_columns") or [])]
    names += [card.get("label_column"), card.get("time_column"), ID_COLUMN]
    return list(dict.fromkeys(str(name) for name in names if name))


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def closest_column(name: str, columns: Iterable[str]) -> str | None:
    """The real column a wrong name most likely meant: same up to case and separators, else difflib's."""
    by_normal = {_normal(column): column for column in columns}
    if _normal(name) in by_normal:
        return by_normal[_normal(name)]
    matches = difflib.get_close_matches(_normal(name), list(by_normal), n=1, cutoff=0.6)
    return by_normal[matches[0]] if matches else None


def missing_keys(message: str) -> list[str]:
    """The names in a KeyError message: 'x', "['x', 'y'] not in index", "None of [Index(['x'])] ..."."""
    try:
        text = ast.literal_eval(message)
    except (ValueError, SyntaxError):
        text = message
    if not isinstance(text, str):
        return [str(text)]
    text = re.sub(r"dtype=(['\"])\w*\1", "", text)
    quoted = re.findall(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", text)
    return [ast.literal_eval(q) for q in quoted] or [text]


def replace_literal(source: str, old: str, new: str) -> tuple[str, int]:
    """Replace the string literal `old` (in either quote style) by `new`; returns the count."""
    count = 0
    for spell in (json.dumps, repr):
        count += source.count(spell(old))
        source = source.replace(spell(old), spell(new))
    return source, count


def _fix_column(files: Files, report: ErrorReport, card: dict[str, Any]) -> Result:
    columns = card_columns(card)
    wrong = [name for name in missing_keys(report.message) if name not in columns]
    fixes = {name: match for name in wrong if (match := closest_column(name, columns))}
    if not fixes:
        return files, f"could not fix: KeyError {report.message[:120]} names no misspelt column of {columns}"
    code = [name for name in files if name.endswith(".py")]
    done: list[str] = []
    for targets in ([report.file] if report.file else [], code):
        for name in targets:
            for old, new in fixes.items():
                files[name], count = replace_literal(files[name], old, new)
                if count:
                    done.append(f"{name}: {old!r} -> {new!r}")
        if done:
            return files, f"KeyError: renamed misspelt column(s) to the dataset's real names ({'; '.join(done)})"
    return files, f"could not fix: the misspelt column(s) {list(fixes)} do not appear as literals in the code"


# --- NameError: a missing import ------------------------------------------------------------


def _fix_undefined_name(files: Files, report: ErrorReport) -> Result:
    match = _UNDEFINED_NAME.search(report.message)
    if not match:
        return files, f"could not fix: NameError {report.message[:120]}"
    name = match["name"]
    statement = KNOWN_IMPORTS.get(name)
    if statement is None:
        return files, f"could not fix: NameError for {name!r}, which no known import defines"
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    targets = [report.file] if report.file else [f for f in files if f.endswith(".py") and pattern.search(files[f])]
    changed = [f for f in targets if statement not in files[f].splitlines()]
    if not changed:
        return files, f"could not fix: NameError for {name!r} although {statement!r} is there"
    for target in changed:
        files[target] = add_import(files[target], statement)
    return files, f"NameError: added `{statement}` to {', '.join(changed)}"


# --- ModuleNotFoundError / ImportError: a module the runtime lacks --------------------------


def _fix_module(files: Files, report: ErrorReport) -> Result:
    missing = _NO_MODULE.search(report.message)
    cannot = _CANNOT_IMPORT.search(report.message)
    if cannot and (cannot["module"], cannot["name"]) in NAME_ALTERNATIVES:
        module, name = cannot["module"], cannot["name"]
        line = re.compile(rf"^from {re.escape(module)} import {name}$", re.M)
        replacement = NAME_ALTERNATIVES[(module, name)]
        files = {f: line.sub(replacement, source) if f.endswith(".py") else source for f, source in files.items()}
        return files, f"ImportError: replaced `from {module} import {name}` by `{replacement}`"
    if not missing or missing["module"] not in MODULE_ALTERNATIVES:
        what = missing["module"] if missing else report.message[:120]
        return files, f"could not fix: {what} is not in the task runtime and has no known drop-in replacement"
    old, new = missing["module"], MODULE_ALTERNATIVES[missing["module"]]
    pattern = re.compile(rf"(?<![\w.]){re.escape(old)}(?!\w)")
    files = {name: pattern.sub(new, source) if name.endswith(".py") else source for name, source in files.items()}
    return files, f"{report.kind}: replaced the module {old} by {new}"


# --- evaluate.py printing more than one JSON object -----------------------------------------


def _is_stdout_print(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    call = node.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "print"):
        return False
    target = next((kw.value for kw in call.keywords if kw.arg == "file"), None)
    return target is None or ast.unparse(target) == "sys.stdout"


def _prints_json(node: ast.stmt) -> bool:
    return any(
        isinstance(arg, ast.Call) and ast.unparse(arg.func) == "json.dumps"
        for arg in node.value.args  # type: ignore[attr-defined]
    )


def stray_prints(source: str) -> list[tuple[ast.stmt, bool]]:
    """Statements printing to stdout other than the JSON; the flag says to leave `pass` in its place."""
    stray: list[tuple[ast.stmt, bool]] = []
    for node in ast.walk(ast.parse(source)):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            found = [s for s in block if _is_stdout_print(s) and not _prints_json(s)]
            stray += [(s, i == 0 and len(found) == len(block)) for i, s in enumerate(found)]
    return stray


def _fix_output(files: Files) -> Result:
    source = files.get("evaluate.py")
    if source is None:
        return files, "could not fix: the output is not one JSON object, and there is no evaluate.py"
    try:
        stray = stray_prints(source)
    except SyntaxError as error:
        return files, f"could not fix: evaluate.py does not parse ({error.msg})"
    if not stray:
        return files, "could not fix: the output is not one JSON object, but evaluate.py prints only the JSON"
    lines = source.splitlines(keepends=True)
    for statement, keep_pass in sorted(stray, key=lambda item: item[0].lineno, reverse=True):
        indent = lines[statement.lineno - 1][: statement.col_offset]
        lines[statement.lineno - 1 : statement.end_lineno] = [f"{indent}pass\n"] if keep_pass else []
    files["evaluate.py"] = "".join(lines)
    return files, f"output was not one JSON object: removed {len(stray)} stray print(s) from evaluate.py"
