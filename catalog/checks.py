"""Is a dataset usable for a proposed task? Pure functions over a `DatasetProfile`.

`check` returns human-readable reasons for rejection (empty = usable); whether the dataset exists at all
is the catalogs' business (`DatasetNotFound`). `resolve_columns` picks input and label columns when a
proposal names none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from catalog.convert import TIME_COLUMN_NAMES
from catalog.features import NUMERIC_TYPES, SCALAR_TYPES, is_numeric_array, is_numeric_series
from catalog.models import DatasetProfile
from catalog.splits import CLASSIFICATION_TASKS, test_rows

DEFAULT_MIN_ROWS = 100
DEFAULT_MAX_BYTES = 1 << 30
MAX_CLASSES = 1000
MAX_FLOAT_CLASSES = 20
LABEL_NAMES = ("label", "labels", "target", "class", "y", "category", "species", "outcome")
TEXT_NAMES = ("text", "sentence", "content", "review", "document", "comment", "body", "question")
IMAGE_NAMES = ("image", "img", "pixels", "picture")
SERIES_NAMES = ("series", "values", "signal", "sequence", "ts", "x")
NUMERIC_LABEL_TASKS = ("tabular_regression", "time_series_forecasting", "count_regression")
ID_NAMES = frozenset({"id", "idx", "index", "uid", "__index_level_0__"})


def check(
    profile: DatasetProfile,
    candidate_input_columns: Sequence[str],
    label_column: str | None,
    task_type: str,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    allowed_licenses: Iterable[str] | None = None,
    token_present: bool = False,
) -> list[str]:
    """Reasons why `profile` cannot serve a `task_type` task with these columns; [] when it can.
    Empty columns are resolved with `resolve_columns`. A dataset we may not read gets only that reason."""
    access = access_reasons(profile, token_present)
    if access:
        return access
    default_inputs, default_label = resolve_columns(profile, task_type, label_column)
    inputs = list(candidate_input_columns) or default_inputs
    label = label_column or default_label
    return [
        *license_reasons(profile, allowed_licenses),
        *split_reasons(profile, min_rows),
        *size_reasons(profile, max_bytes),
        *column_reasons(profile, inputs, label, task_type),
    ]


def access_reasons(profile: DatasetProfile, token_present: bool) -> list[str]:
    if token_present:
        return []
    reasons = []
    if profile.gated:
        reasons.append(f"{profile.id} is gated on the Hub: it needs HF_TOKEN from an account granted access")
    if profile.private:
        reasons.append(f"{profile.id} is private: it needs HF_TOKEN from an account that can read it")
    return reasons


def license_reasons(profile: DatasetProfile, allowed_licenses: Iterable[str] | None) -> list[str]:
    if allowed_licenses is None:
        return []
    allowed = {name.strip().lower() for name in allowed_licenses}
    licenses = [part.strip().lower() for part in (profile.license or "").split(",") if part.strip()]
    if not licenses:
        return [f"license unknown; allowed: {', '.join(sorted(allowed))}"]
    refused = [name for name in licenses if name not in allowed]
    if refused:
        return [f"license {', '.join(refused)} is not allowed; allowed: {', '.join(sorted(allowed))}"]
    return []


def effective_split_sizes(profile: DatasetProfile) -> dict[str, int]:
    """Train and test sizes as materialised: a missing test is the validation split, else a cut of train."""
    sizes = profile.split_sizes
    if "train" not in sizes:
        return {}
    test = sizes.get("test", sizes.get("validation"))
    if test is not None:
        return {"train": sizes["train"], "test": test}
    if sizes["train"] < 2:
        return {"train": sizes["train"], "test": 0}
    cut = test_rows(sizes["train"])
    return {"train": sizes["train"] - cut, "test": cut}


def split_reasons(profile: DatasetProfile, min_rows: int) -> list[str]:
    sizes = effective_split_sizes(profile)
    if not sizes:
        return [f"no train split (splits: {', '.join(sorted(profile.split_sizes)) or 'none'})"]
    min_test = max(1, min_rows // 5)
    reasons = []
    if sizes["train"] < min_rows:
        reasons.append(f"train split has {sizes['train']} rows, fewer than {min_rows}")
    if sizes["test"] < min_test:
        reasons.append(f"test split has {sizes['test']} rows, fewer than {min_test}")
    return reasons


def size_reasons(profile: DatasetProfile, max_bytes: int | None) -> list[str]:
    if max_bytes is None or profile.size_bytes is None or profile.size_bytes <= max_bytes:
        return []
    return [f"dataset is {profile.size_bytes:,} bytes, over the limit of {max_bytes:,}"]


def column_reasons(
    profile: DatasetProfile, inputs: list[str], label: str | None, task_type: str
) -> list[str]:
    columns = ", ".join(profile.features) or "none known"
    missing = [name for name in inputs if name not in profile.features]
    reasons = []
    if not inputs:
        reasons.append(f"no input columns given and none fit a {task_type} task (columns: {columns})")
    if missing:
        reasons.append(f"input column(s) {', '.join(missing)} not in the dataset (columns: {columns})")
    if label is None:
        reasons.append(f"no label column given and none could be chosen (columns: {columns})")
    elif label not in profile.features:
        reasons.append(f"label column {label!r} not in the dataset (columns: {columns})")
    elif label in inputs:
        reasons.append(f"label column {label!r} is also an input column")
    if reasons:
        return reasons
    return [*label_type_reasons(profile, label, task_type), *input_type_reasons(profile, inputs, task_type)]


def label_type_reasons(profile: DatasetProfile, label: str, task_type: str) -> list[str]:
    type_name = profile.features[label]
    if task_type in CLASSIFICATION_TASKS:
        return classification_label_reasons(profile, label, type_name)
    if type_name not in NUMERIC_TYPES:
        return [f"label {label!r} is {type_name}: {task_type} needs a numeric target"]
    if label in profile.class_names:
        return [
            f"label {label!r} holds class ids ({', '.join(profile.class_names[label][:5])}…), not a quantity"
        ]
    if task_type == "time_series_forecasting" and time_column_of(profile) is None:
        return ["no time column (a date or time-step column) to order the series by"]
    if task_type == "count_regression":
        return count_label_reasons(profile, label, type_name)
    return []


def count_label_reasons(profile: DatasetProfile, label: str, type_name: str) -> list[str]:
    """A count label is a column of whole numbers >= 0: an int column, or a float column whose values
    seen are whole; every value is checked again when the data is materialised."""
    seen = [row.get(label) for row in profile.sample_rows if row.get(label) is not None]
    bad = [v for v in seen
           if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or not float(v).is_integer()]
    if bad:
        return [f"label {label!r} holds {bad[0]!r}: count_regression needs a non-negative integer count"]
    if type_name == "float" and not seen:
        return [f"label {label!r} is float with no values seen: count_regression needs integer counts"]
    return []


def classification_label_reasons(profile: DatasetProfile, label: str, type_name: str) -> list[str]:
    distinct = profile.distinct_counts.get(label) or len(profile.class_names.get(label, [])) or None
    if type_name == "float" and (distinct is None or distinct > MAX_FLOAT_CLASSES):
        seen = f"{distinct} distinct values" if distinct else "values of unknown spread"
        return [f"label {label!r} is float with {seen}: a regression target, not classes"]
    if type_name not in ("int", "str", "bool", "float"):
        return [f"label {label!r} is {type_name}: classification needs int or str classes"]
    if distinct is not None and distinct > MAX_CLASSES:
        return [f"label {label!r} has {distinct} distinct values, more than {MAX_CLASSES} classes"]
    if distinct == 1 and profile.source != "hub":  # a Hub preview may show one class by chance
        return [f"label {label!r} has a single class"]
    return []


def input_type_reasons(profile: DatasetProfile, inputs: list[str], task_type: str) -> list[str]:
    types = {name: profile.features[name] for name in inputs}
    first, first_type = inputs[0], types[inputs[0]]
    if task_type == "image_classification":
        if first_type != "image" and not is_numeric_array(first_type):
            return [f"image column {first!r} is {first_type}, not an image or a list of pixels"]
        return []
    if task_type == "text_classification":
        return [] if first_type == "str" else [f"text column {first!r} is {first_type}, not a string"]
    if task_type == "time_series_classification":
        if len(inputs) != 1 or not is_numeric_series(first_type):
            return [f"series column {first!r} is {first_type}: time_series_classification needs one column "
                    "holding a list of numbers (a whole series) per row"]
        return []
    unusable = [f"{name} ({t})" for name, t in types.items() if t not in SCALAR_TYPES]
    return (
        [f"input column(s) {', '.join(unusable)} are not scalar: {task_type} needs scalar columns"]
        if unusable
        else []
    )


def time_column_of(profile: DatasetProfile) -> str | None:
    """The profile's time column: the declared one, a datetime column, or one whose name says time."""
    if profile.time_column in profile.features:
        return profile.time_column
    for name, type_name in profile.features.items():
        if type_name == "datetime":
            return name
    lowered = {name.lower(): name for name in profile.features}
    return next((lowered[name] for name in TIME_COLUMN_NAMES if name in lowered), None)


def resolve_columns(profile: DatasetProfile, task_type: str, label: str | None = None) -> tuple[list[str], str | None]:
    """Default input columns and label column for a task type: the profile's own when it declares them,
    else the conventional names (`label`, `target`, `text`, `image`, …), else by column type. A given
    `label` is kept, and the default inputs are the others."""
    label = label or _default_label(profile, task_type)
    if (
        profile.input_columns
        and profile.label_column == label
        and all(c in profile.features for c in profile.input_columns)
    ):
        return list(profile.input_columns), label
    others = {name: t for name, t in profile.features.items() if name != label}
    if task_type == "image_classification":
        images = [n for n, t in others.items() if t == "image" or is_numeric_array(t)]
        return _prefer(images, IMAGE_NAMES)[:1], label
    if task_type == "text_classification":
        texts = [n for n, t in others.items() if t == "str"]
        return _prefer(texts, TEXT_NAMES)[:1], label
    if task_type == "time_series_classification":
        series = [n for n, t in others.items() if is_numeric_series(t)]
        return _prefer(series, SERIES_NAMES)[:1], label
    scalars = [n for n, t in others.items() if t in SCALAR_TYPES and n.lower() not in ID_NAMES]
    if task_type == "time_series_forecasting":
        time_column = time_column_of(profile)
        exogenous = [n for n in scalars if n != time_column and others[n] in NUMERIC_TYPES]
        return ([time_column] if time_column else []) + exogenous, label
    return scalars, label


def _default_label(profile: DatasetProfile, task_type: str) -> str | None:
    """The declared label, else a conventionally named column, else (for numeric targets) the last
    numeric column."""
    if profile.label_column in profile.features:
        return profile.label_column
    lowered = {name.lower(): name for name in profile.features}
    named = next((lowered[name] for name in LABEL_NAMES if name in lowered), None)
    if named or task_type not in NUMERIC_LABEL_TASKS:
        return named
    time_column = time_column_of(profile)
    numeric = [n for n, t in profile.features.items() if t in NUMERIC_TYPES and n != time_column]
    return numeric[-1] if numeric else None


def _prefer(names: list[str], preferred: tuple[str, ...]) -> list[str]:
    """`names` with the conventionally named ones first."""
    rank = {name: i for i, name in enumerate(preferred)}
    return sorted(names, key=lambda name: rank.get(name.lower(), len(rank)))
