"""Type names for columns, from Hugging Face feature descriptions (the dicts of `Features.to_dict()`,
of the dataset viewer's `/info` and `/first-rows`) — one mapping for local and Hub data alike."""

from __future__ import annotations

from typing import Any

INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "float", "double", "halffloat"})
STR_DTYPES = frozenset({"string", "large_string", "str", "utf8", "large_utf8"})
LIST_KINDS = frozenset({"Sequence", "List", "LargeList"})
ARRAY_DIMS = {"Array2D": 2, "Array3D": 3, "Array4D": 4, "Array5D": 5}
MEDIA_KINDS = {"Image": "image", "Audio": "audio", "Video": "video", "Pdf": "pdf", "Json": "json"}

SCALAR_TYPES = frozenset({"int", "float", "bool", "str", "datetime"})
NUMERIC_TYPES = frozenset({"int", "float"})


def value_type_name(dtype: str) -> str:
    """The type name of a `Value(dtype)`."""
    if dtype in INT_DTYPES:
        return "int"
    if dtype in FLOAT_DTYPES or dtype.startswith("decimal"):
        return "float"
    if dtype in STR_DTYPES:
        return "str"
    if dtype in ("bool", "boolean"):
        return "bool"
    if dtype.startswith(("timestamp", "date")):
        return "datetime"
    if dtype in ("binary", "large_binary"):
        return "bytes"
    if dtype.startswith(("time", "duration")):
        return "duration"
    return dtype or "null"


def feature_type_name(feature: Any) -> str:
    """The type name of one serialized feature."""
    if isinstance(feature, list):  # legacy list notation: [inner]
        return f"list<{feature_type_name(feature[0]) if feature else 'null'}>"
    if not isinstance(feature, dict):
        return "unknown"
    kind = feature.get("_type")
    if kind == "Value":
        return value_type_name(str(feature.get("dtype", "")))
    if kind == "ClassLabel":
        return "int"
    if kind in LIST_KINDS:
        inner = feature.get("feature")
        if isinstance(inner, dict) and "_type" not in inner:
            return "struct"  # a Sequence of a dict is stored as a dict of lists
        return f"list<{feature_type_name(inner)}>"
    if kind in ARRAY_DIMS:
        return (
            "list<" * ARRAY_DIMS[kind] + value_type_name(str(feature.get("dtype"))) + ">" * ARRAY_DIMS[kind]
        )
    if kind in MEDIA_KINDS:
        return MEDIA_KINDS[kind]
    return "struct"  # a dict of features, Translation, or an unknown kind


def features_to_types(features: dict[str, Any]) -> dict[str, str]:
    return {name: feature_type_name(feature) for name, feature in features.items()}


def class_names(features: dict[str, Any]) -> dict[str, list[str]]:
    """The names of each ClassLabel column's classes, by column."""
    return {
        name: [str(n) for n in feature.get("names", [])]
        for name, feature in features.items()
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel"
    }


def list_inner(type_name: str) -> str | None:
    """`float` for `list<float>`, `list<int>` for `list<list<int>>`; None for a type that is not a list."""
    if type_name.startswith("list<") and type_name.endswith(">"):
        return type_name[5:-1]
    return None


def is_numeric_array(type_name: str) -> bool:
    """A (nested) list of numbers: usable as pixels."""
    inner = list_inner(type_name)
    while inner is not None:
        if inner in NUMERIC_TYPES:
            return True
        inner = list_inner(inner)
    return False


def is_numeric_series(type_name: str) -> bool:
    """A flat list of numbers: usable as one univariate series."""
    return list_inner(type_name) in NUMERIC_TYPES
