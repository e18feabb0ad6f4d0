"""JSON schemas of the replies asked for with structured output (`response_format` json_schema), and a
check of a value against them.

OpenAI's strict mode wants an object at the root, every property required and `additionalProperties:
false`; an optional value is a `null`-able type. vLLM's guided decoding takes the same field. The prompts
still ask for the text format: the schema constrains the reply where the endpoint has it, and the role's
parser reads both forms (`{"topics": [...]}`, a whole-JSON bundle with a `files` object).
"""

from __future__ import annotations

from typing import Any

from domain.tasks import TASK_TYPES

BUNDLE_FILES = ("prepare.py", "baseline.py", "evaluate.py", "sample_submission.csv")


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


_STRINGS = {"type": "array", "items": {"type": "string"}}

TOPICS: dict[str, Any] = _object({"topics": {"type": "array", "items": _object({
    "title": {"type": "string"},
    "description": {"type": "string"},
    "task_type": {"type": ["string", "null"], "enum": [*TASK_TYPES, None]},
    "candidate_datasets": {"type": "array", "items": _object({
        "id": {"type": "string"},
        "source": {"type": "string", "enum": ["hub", "builtin", "local"]},
        "input_columns": _STRINGS,
        "label_column": {"type": ["string", "null"]},
    })},
})}})

TASK_BUNDLE: dict[str, Any] = _object({
    "name": {"type": "string"},
    "metric": {"type": "string"},
    "direction": {"type": "string", "enum": ["maximize", "minimize"]},
    "training_timeout": {"type": "integer"},
    "description": {"type": "string"},
    "dataset_description": {"type": "string"},
    "files": _object({name: {"type": "string"} for name in BUNDLE_FILES}),
})

SCHEMAS: dict[str, dict[str, Any]] = {"topics": TOPICS, "task_bundle": TASK_BUNDLE}


def response_format(name: str) -> dict[str, Any]:
    """The request's `response_format` for the schema of that name."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True}}


_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "string": str, "integer": int,
                                              "number": (int, float), "boolean": bool, "null": type(None)}


def violation(value: Any, schema: dict[str, Any], where: str = "$") -> str | None:
    """Where and how the value breaks the schema (the subset used above: type, enum, properties, required,
    additionalProperties, items), or None when it conforms."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        bad_bool = isinstance(value, bool) and "boolean" not in kinds
        if bad_bool or not any(isinstance(value, _TYPES[k]) for k in kinds):
            return f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        missing = [k for k in schema.get("required", ()) if k not in value]
        if missing:
            return f"{where}: missing {missing}"
        extra = [k for k in value if k not in props]
        if extra and schema.get("additionalProperties") is False:
            return f"{where}: unexpected {extra}"
        for k, sub in props.items():
            if k in value and (problem := violation(value[k], sub, f"{where}.{k}")):
                return problem
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            if problem := violation(item, schema["items"], f"{where}[{i}]"):
                return problem
    return None
