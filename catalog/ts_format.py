"""A strict reader of the `.ts` time-series classification format (sktime/aeon, the UCR/UEA archives).

A file is comment lines (`#`), a header of `@key value` lines, `@data`, then one case per line: each
dimension's values separated by commas, dimensions separated by colons, and the class label last, e.g.
`0.1,0.2,0.3:1.0,1.1,1.2:walking`. Only what a file declares is accepted: a missing value (`?`) needs
`@missing true`, a second dimension needs `@univariate false`, a label must be one of `@classLabel`'s,
and `@equalLength true` series must all have `@seriesLength` values. Anything else is a `TsFormatError`
naming the file and line, never a guess. Time-stamped series and regression files are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOOLEAN_KEYS = ("timestamps", "missing", "univariate", "equallength")
KNOWN_KEYS = (*BOOLEAN_KEYS, "problemname", "dimensions", "serieslength", "classlabel", "targetlabel", "data")


class TsFormatError(ValueError):
    """The text is not a well-formed `.ts` classification file; the message names where and why."""


@dataclass(frozen=True)
class TsData:
    """A parsed file: one (dimensions, length) float array per case, its class label, and the header."""

    problem: str
    class_labels: tuple[str, ...]  # as declared by @classLabel, in the file's order
    dimensions: int
    series: list[np.ndarray]
    labels: list[str]
    header: dict[str, str] = field(default_factory=dict)
    comment: str = ""  # the leading `#` lines: the archive's description of the data

    @property
    def lengths(self) -> set[int]:
        return {int(case.shape[1]) for case in self.series}


@dataclass
class _Header:
    values: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def flag(self, key: str, default: bool) -> bool:
        return {"true": True, "false": False}[self.values[key]] if key in self.values else default

    def integer(self, key: str) -> int | None:
        return int(self.values[key]) if key in self.values else None


def read_ts(path: Path | str) -> TsData:
    """Parse the `.ts` file at `path` (see the module docstring for what is accepted)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TsFormatError(f"{path.name}: cannot read: {exc}") from None
    return parse_ts(text, source=path.name)


def parse_ts(text: str, source: str = "<ts>") -> TsData:
    """Parse the text of a `.ts` classification file; `source` names it in error messages."""
    lines = text.splitlines()
    header, data_start = _read_header(lines, source)
    dimensions = _dimensions(header, source)
    labels_declared = tuple(header.values["classlabel"].split()[1:])
    missing_ok = header.flag("missing", False)
    series, labels = [], []
    for number, line in enumerate(lines[data_start:], start=data_start + 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source} line {number}"
        case, label = _read_case(line.strip(), dimensions, missing_ok, where)
        if label not in labels_declared:
            raise TsFormatError(f"{where}: class label {label!r} is not one of @classLabel {list(labels_declared)}")
        series.append(case)
        labels.append(label)
    if not series:
        raise TsFormatError(f"{source}: no cases after @data")
    data = TsData(header.values.get("problemname", ""), labels_declared, dimensions, series, labels,
                  dict(header.values), "\n".join(header.comments))  # fmt: skip
    _check_lengths(data, header, source)
    return data


def _read_header(lines: list[str], source: str) -> tuple[_Header, int]:
    """The header's keys (lower-cased) and the index of the first line after `@data`."""
    header = _Header()
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            header.comments.append(line.lstrip("#").strip())
            continue
        where = f"{source} line {index + 1}"
        if not line.startswith("@"):
            raise TsFormatError(f"{where}: expected a @key header line or @data before the data, got {line[:40]!r}")
        key, _, value = line[1:].partition(" ")
        key, value = key.lower(), value.strip()
        if key not in KNOWN_KEYS:
            raise TsFormatError(f"{where}: unknown header @{key}")
        if key == "data":
            _check_header(header, source)
            return header, index + 1
        if key in header.values:
            raise TsFormatError(f"{where}: @{key} is given twice")
        _check_value(key, value, where)
        header.values[key] = value.lower() if key in BOOLEAN_KEYS else value
    raise TsFormatError(f"{source}: no @data line")


def _check_value(key: str, value: str, where: str) -> None:
    if key in BOOLEAN_KEYS and value.lower() not in ("true", "false"):
        raise TsFormatError(f"{where}: @{key} must be true or false, not {value!r}")
    if key in ("dimensions", "serieslength") and (not value.isdigit() or int(value) < 1):
        raise TsFormatError(f"{where}: @{key} must be a positive integer, not {value!r}")


def _check_header(header: _Header, source: str) -> None:
    if "targetlabel" in header.values:
        raise TsFormatError(f"{source}: a @targetLabel (regression) file, not a classification file")
    classes = header.values.get("classlabel", "").split()
    if not classes or classes[0].lower() != "true" or len(classes) < 3:
        raise TsFormatError(f"{source}: @classLabel must be `true` followed by at least two class labels")
    if header.flag("timestamps", False):
        raise TsFormatError(f"{source}: time-stamped series (@timeStamps true) are not supported")


def _dimensions(header: _Header, source: str) -> int:
    declared = header.integer("dimensions")
    if header.flag("univariate", True):
        if declared not in (None, 1):
            raise TsFormatError(f"{source}: @univariate true but @dimensions {declared}")
        return 1
    if declared is None:
        raise TsFormatError(f"{source}: @univariate false needs @dimensions")
    return declared


def _read_case(line: str, dimensions: int, missing_ok: bool, where: str) -> tuple[np.ndarray, str]:
    fields = line.split(":")
    if len(fields) != dimensions + 1:
        raise TsFormatError(
            f"{where}: {len(fields) - 1} dimension(s) before the label, expected {dimensions}"
        )
    rows = [_read_values(text, missing_ok, f"{where}, dimension {d + 1}") for d, text in enumerate(fields[:-1])]
    if len({len(row) for row in rows}) != 1:
        raise TsFormatError(f"{where}: its dimensions have different lengths {[len(r) for r in rows]}")
    label = fields[-1].strip()
    if not label:
        raise TsFormatError(f"{where}: no class label after the last colon")
    return np.asarray(rows, dtype=float), label


def _read_values(text: str, missing_ok: bool, where: str) -> list[float]:
    values = []
    for item in text.split(","):
        item = item.strip()
        if item == "?" or item.lower() == "nan":
            if not missing_ok:
                raise TsFormatError(f"{where}: missing value {item!r} but @missing is not true")
            values.append(math.nan)
            continue
        try:
            value = float(item)
        except ValueError:
            raise TsFormatError(f"{where}: {item[:30]!r} is not a number") from None
        if math.isinf(value):
            raise TsFormatError(f"{where}: {item!r} is not a finite number")
        values.append(value)
    return values


def _check_lengths(data: TsData, header: _Header, source: str) -> None:
    declared = header.integer("serieslength")
    lengths = data.lengths
    if header.flag("equallength", False):
        if len(lengths) != 1:
            raise TsFormatError(f"{source}: @equalLength true but the series have {len(lengths)} lengths")
        if declared is not None and lengths != {declared}:
            raise TsFormatError(f"{source}: @seriesLength {declared} but the series have {lengths.pop()} values")
