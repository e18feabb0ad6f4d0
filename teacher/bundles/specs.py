"""Per task type: the metric, its direction and the baseline variants a draft picks from by task id (the
PyTorch ones when the task runtime is `torch` and the type has a PyTorch baseline)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Variant:
    """One baseline: the MODEL constant, the hyperparameters it overrides and a phrase for the description."""

    model: str
    doc: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    metric: str
    direction: Literal["maximize", "minimize"]
    other_metrics: tuple[str, ...]
    noun: str
    defaults: dict[str, Any]
    variants: tuple[Variant, ...]
    training_timeout: int = 300
    torch_defaults: dict[str, Any] = field(default_factory=dict)
    torch_variants: tuple[Variant, ...] = ()  # baseline_torch.py.j2's models; none: the type has no torch baseline


SPECS: dict[str, TaskSpec] = {
    "tabular_classification": TaskSpec(
        metric="accuracy",
        direction="maximize",
        other_metrics=("f1_macro",),
        noun="prediction",
        defaults={"C": 1.0, "N_NEIGHBORS": 15, "MAX_DEPTH": None, "N_ESTIMATORS": 100},
        variants=(
            Variant("decision_tree", "depth-3 decision tree", {"MAX_DEPTH": 3}),
            Variant("knn", "25-nearest-neighbour classifier", {"N_NEIGHBORS": 25}),
            Variant("logistic_regression", "strongly regularised logistic regression", {"C": 0.05}),
        ),
    ),
    "tabular_regression": TaskSpec(
        metric="rmse",
        direction="minimize",
        other_metrics=("mae", "r2"),
        noun="prediction",
        defaults={"ALPHA": 1.0, "N_NEIGHBORS": 15, "MAX_DEPTH": None, "N_ESTIMATORS": 100, "MIN_SAMPLES_LEAF": 1},
        variants=(
            Variant("decision_tree", "depth-3 regression tree", {"MAX_DEPTH": 3}),
            Variant("knn", "20-nearest-neighbour regressor", {"N_NEIGHBORS": 20}),
        ),
    ),
    "image_classification": TaskSpec(
        metric="accuracy",
        direction="maximize",
        other_metrics=("f1_macro",),
        noun="image classification",
        defaults={"C": 1.0, "N_NEIGHBORS": 5},
        variants=(
            Variant("logistic_regression", "strongly regularised logistic regression", {"C": 0.05}),
            Variant("knn", "25-nearest-neighbour classifier", {"N_NEIGHBORS": 25}),
        ),
        training_timeout=600,
        torch_defaults={"CHANNELS": 8, "HIDDEN": 32, "EPOCHS": 3, "LEARNING_RATE": 0.001},
        torch_variants=(
            Variant("cnn", "small convolutional network (PyTorch, 3 epochs)"),
            Variant("mlp", "one-hidden-layer neural network (PyTorch, 3 epochs)"),
        ),
    ),
    "text_classification": TaskSpec(
        metric="accuracy",
        direction="maximize",
        other_metrics=("f1_macro",),
        noun="text classification",
        defaults={"NGRAM_MAX": 1, "C": 1.0, "ALPHA": 1.0},
        variants=(
            Variant("logistic_regression", "logistic regression on single words"),
            Variant("naive_bayes", "complement naive Bayes classifier on single words"),
        ),
        torch_defaults={"NGRAM_MAX": 1, "EMBED_DIM": 16, "EPOCHS": 3, "LEARNING_RATE": 0.005},
        torch_variants=(
            Variant("embedding_bag", "bag-of-embeddings network (PyTorch) on single words"),
            Variant("embedding_mlp", "bag-of-embeddings network with a hidden layer (PyTorch) on single words"),
        ),
    ),
    "time_series_forecasting": TaskSpec(
        metric="rmse",
        direction="minimize",
        other_metrics=("mae", "r2"),
        noun="forecasting",
        defaults={},
        variants=(
            Variant("seasonal_naive", "seasonal-naive (repeat the last season)"),
            Variant("linear_trend", "linear-trend"),
        ),
        torch_defaults={"HIDDEN": 16, "EPOCHS": 20, "LEARNING_RATE": 0.01},
        # a GRU over a two-season window trains ~4x slower than the MLP on CPU: it is one of the solver's edits
        torch_variants=(Variant("mlp", "one-hidden-layer network (PyTorch) on a window of past values"),),
    ),
    "time_series_classification": TaskSpec(
        metric="accuracy",
        direction="maximize",
        other_metrics=("f1_macro",),
        noun="time series classification",
        defaults={"FEATURE_SET": "raw", "NORMALIZE": True, "N_NEIGHBORS": 1, "C": 1.0, "N_ESTIMATORS": 100},
        variants=(
            Variant("knn", "1-nearest-neighbour classifier on the z-normalised raw series (Euclidean distance)"),
            Variant("logistic_regression", "logistic regression on eight summary statistics of each series",
                    {"FEATURE_SET": "summary"}),
        ),
        torch_defaults={"CHANNELS": 8, "EPOCHS": 10, "LEARNING_RATE": 0.001},
        torch_variants=(
            Variant("cnn", "small 1-D convolutional network (PyTorch, 10 epochs)"),
            Variant("mlp", "one-hidden-layer neural network (PyTorch, 10 epochs)"),
        ),
    ),
    "count_regression": TaskSpec(
        metric="mean_poisson_deviance",
        direction="minimize",
        other_metrics=("mae", "rmse"),
        noun="count prediction",
        defaults={"ALPHA": 1.0, "MAX_DEPTH": None, "N_ESTIMATORS": 100, "MIN_SAMPLES_LEAF": 1, "LEARNING_RATE": 0.1},
        variants=(
            Variant("poisson_glm", "strongly regularised Poisson regression (log link)", {"ALPHA": 10.0}),
            Variant("decision_tree", "depth-2 Poisson regression tree", {"MAX_DEPTH": 2, "MIN_SAMPLES_LEAF": 20}),
        ),
    ),
}


def pick(task_id: str, purpose: str, options: Sequence[T]) -> T:
    """A deterministic choice among options, stable across processes (unlike hash())."""
    digest = hashlib.sha256(f"{task_id}\0{purpose}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]
