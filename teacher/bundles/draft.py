"""write_bundle: render a task bundle for a dataset card from the templates of its task type."""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from teacher.bundles.card import ID_COLUMN, Schema, read_card
from teacher.bundles.defects import inject_defect, resolve_defect
from teacher.bundles.render import render
from teacher.bundles.specs import SPECS, Variant, pick

CODE_FILES = ("prepare.py", "baseline.py", "evaluate.py")
SAMPLE_ROWS = 5


class BundleDraft(BaseModel):
    """A drafted task: the files of a TaskBundle plus its metadata (the caller adds ids and the data ref)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    task_type: str
    dataset_name: str
    description: str  # holds {dataset_docs}; ends with a SUBMISSION FORMAT section
    dataset_description: str
    metric: str
    direction: Literal["maximize", "minimize"]
    training_timeout: int = Field(ge=1)
    files: dict[str, str]
    baseline_model: str
    defect: str | None = None  # the injected defect, for logs and tests; never given to fix_bundle

    def bundle_fields(self) -> dict[str, Any]:
        """The keyword arguments of domain.payloads.TaskBundle but task_id and data."""
        return self.model_dump(exclude={"baseline_model", "defect"})


def write_bundle(card: dict[str, Any], *, task_id: str, defect: str | None = None,
                 runtime: str = "sklearn") -> BundleDraft:
    """Draft a bundle for `card`; `defect` ("wrong_column", "missing_import", "malformed_output" or
    "auto") plants a realistic bug in the first draft. With `runtime` "torch", a task type that has a
    PyTorch baseline gets it. Raises CardError for an unusable card."""
    schema = read_card(card)
    spec = SPECS[schema.task_type]
    torch = runtime == "torch" and bool(spec.torch_variants)
    variant = pick(task_id, "baseline", spec.torch_variants if torch else spec.variants)
    context = _context(schema, variant, torch)
    files = {name: render(f"{schema.task_type}/{template_name(name, torch)}.j2", **context) for name in CODE_FILES}
    files["sample_submission.csv"] = sample_submission(schema)
    chosen = resolve_defect(defect, task_id)
    if chosen:
        files = inject_defect(files, schema, chosen, task_id)
    return BundleDraft(
        name=task_name(schema),
        task_type=schema.task_type,
        dataset_name=schema.name,
        description=render(f"{schema.task_type}/description.md.j2", **context).strip() + "\n",
        dataset_description=dataset_description(schema),
        metric=spec.metric,
        direction=spec.direction,
        training_timeout=spec.training_timeout,
        files=files,
        baseline_model=variant.model,
        defect=chosen,
    )


def template_name(file: str, torch: bool) -> str:
    """baseline.py's PyTorch template is baseline_torch.py; the other files are shared by both runtimes."""
    return "baseline_torch.py" if torch and file == "baseline.py" else file


def _context(schema: Schema, variant: Variant, torch: bool = False) -> dict[str, Any]:
    spec = SPECS[schema.task_type]
    defaults = spec.torch_defaults if torch else spec.defaults
    forecasting = schema.task_type == "time_series_forecasting"
    return {
        "dataset_name": schema.name,
        "label": schema.label,
        "features": list(schema.inputs),
        "covariates": list(schema.inputs) if forecasting else [],
        "image": schema.image_column,
        "image_shape": schema.image_shape,
        "text": schema.text_column,
        "series": schema.series_column,
        "time_column": schema.time_column,
        "season_length": schema.season_length,
        "classification": spec.metric == "accuracy",
        "model": variant.model,
        "model_doc": variant.doc,
        "params": {**defaults, **variant.params},
        "torch": torch,
        "metric": spec.metric,
        "direction": spec.direction,
        "other_metrics": list(spec.other_metrics),
    }


def task_name(schema: Schema) -> str:
    dataset = re.sub(r"[_\-]+", " ", schema.name.rsplit("/", 1)[-1]).strip() or "Dataset"
    dataset = dataset[0].upper() + dataset[1:]
    label = re.sub(r"[_\-]+", " ", schema.label).strip()
    named_by_label = schema.task_type in ("tabular_classification", "tabular_regression", "time_series_forecasting")
    if named_by_label and label.lower() != dataset.lower():
        return f"{dataset} {label} {SPECS[schema.task_type].noun}"
    return f"{dataset} {SPECS[schema.task_type].noun}"


def dataset_description(schema: Schema) -> str:
    """The card's description plus the columns and split sizes (fills {dataset_docs})."""
    lines = [schema.description.strip()] if schema.description.strip() else []
    columns = [*schema.inputs, *([schema.time_column] if schema.time_column else [])]
    typed = ", ".join(f"{c} ({schema.types[c]})" if c in schema.types else c for c in columns)
    label_type = f" ({schema.types[schema.label]})" if schema.label in schema.types else ""
    lines.append(f"Input columns: {typed}. Label: {schema.label}{label_type}.")
    if schema.image_shape:
        lines.append(f"Image shape: {'x'.join(map(str, schema.image_shape))}.")
    if schema.split_sizes:
        sizes = ", ".join(f"{split} {rows} rows" for split, rows in schema.split_sizes.items())
        lines.append(f"Raw splits: {sizes}.")
    return "\n".join(lines)


def sample_submission(schema: Schema) -> str:
    """A few rows in the submission format; prepare.py rewrites it with a real label from the data."""
    rows = min(SAMPLE_ROWS, schema.split_sizes.get("test", SAMPLE_ROWS)) or SAMPLE_ROWS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([ID_COLUMN, schema.label])
    writer.writerows([i, _placeholder(schema)] for i in range(rows))
    return buffer.getvalue()


def _placeholder(schema: Schema) -> Any:
    if schema.sample_label is not None:
        return schema.sample_label
    if SPECS[schema.task_type].metric != "accuracy":
        return 0.0
    return 0 if schema.label_is_numeric else "unknown"
