"""candidate_edits: improvements the rule-based solver can try on baseline.py, as shell commands.

Each edit sets module-level constants of baseline.py in place with `sed -i` (a command a real shell in
the sandbox runs) and comes with the thought that motivates it. Edits are absolute (they set, not
nudge, values), so each one can be tried on its own and applying several leaves the last one's model.
A PyTorch baseline (`FRAMEWORK = "torch"`) gets its own ideas: epochs, learning rate, width, augmentation,
early stopping.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

BASELINE = "baseline.py"


@dataclass(frozen=True)
class Edit:
    thought: str  # why this change should help, in the first person
    command: str  # a shell command that edits baseline.py in place
    settings: dict[str, Any] = field(default_factory=dict)  # constant -> new value


@dataclass(frozen=True)
class _Idea:
    settings: dict[str, Any]
    why: str
    framework: str = "sklearn"  # the baseline's FRAMEWORK constant it applies to (absent: sklearn)


def _torch(settings: dict[str, Any], why: str) -> _Idea:
    return _Idea(settings, why, "torch")


_IDEAS: dict[str, tuple[_Idea, ...]] = {
    "tabular_classification": (
        _Idea({"MODEL": "random_forest", "N_ESTIMATORS": 300, "MAX_DEPTH": None},
              "a random forest of 300 unpruned trees captures nonlinear interactions while averaging "
              "away most of the variance of single trees"),
        _Idea({"MODEL": "hist_gradient_boosting", "N_ESTIMATORS": 200, "MAX_DEPTH": None},
              "gradient-boosted trees are usually the strongest off-the-shelf model on tabular data"),
        _Idea({"MODEL": "logistic_regression", "C": 1.0},
              "a linear model with moderate regularisation is hard to beat when classes are nearly "
              "linearly separable after standardisation"),
    ),
    "tabular_regression": (
        _Idea({"MODEL": "random_forest", "N_ESTIMATORS": 300, "MAX_DEPTH": None, "MIN_SAMPLES_LEAF": 5},
              "a random forest with leaves of at least 5 rows gives smooth, low-variance predictions and "
              "captures nonlinear effects"),
        _Idea({"MODEL": "ridge", "ALPHA": 1.0},
              "a lightly regularised linear model extrapolates well and often wins on small, noisy data"),
        _Idea({"MODEL": "hist_gradient_boosting", "N_ESTIMATORS": 300, "MAX_DEPTH": 3},
              "300 shallow boosted trees model interactions with little overfitting"),
    ),
    "image_classification": (
        _Idea({"MODEL": "svm", "C": 10.0},
              "an RBF-kernel SVM is a strong classic model on small images: it compares whole pixel "
              "patterns instead of single pixels"),
        _Idea({"MODEL": "mlp", "HIDDEN_UNITS": 256},
              "a neural network with a 256-unit hidden layer learns stroke-like features from the pixels"),
        _Idea({"MODEL": "random_forest", "N_ESTIMATORS": 300},
              "a 300-tree random forest handles the pixel features nonlinearly and rarely overfits"),
        _torch({"MODEL": "cnn", "CHANNELS": 16, "HIDDEN": 64, "EPOCHS": 10, "PATIENCE": 3},
               "a wider convolutional network trained for up to 10 epochs, stopping once the held-out accuracy "
               "stalls, learns local stroke and edge patterns that 3 epochs cannot"),
        _torch({"AUGMENT_SHIFT": 1, "EPOCHS": 12, "PATIENCE": 3},
               "shifting each training batch by up to a pixel makes the network robust to small misalignments, "
               "and the extra epochs let it use the varied images"),
        _torch({"LEARNING_RATE": 0.003, "WEIGHT_DECAY": 0.0001, "EPOCHS": 8},
               "a higher learning rate with light weight decay converges within a few epochs and regularises"),
    ),
    "text_classification": (
        _Idea({"MODEL": "logistic_regression", "NGRAM_MAX": 2, "C": 10.0, "SUBLINEAR_TF": True},
              "word pairs capture negation and short phrases such as 'not good', and the larger "
              "vocabulary needs weaker regularisation"),
        _Idea({"MODEL": "linear_svm", "NGRAM_MAX": 2, "C": 1.0, "SUBLINEAR_TF": True},
              "a linear SVM on words and word pairs is a classic strong text classifier"),
        _Idea({"MODEL": "naive_bayes", "NGRAM_MAX": 2, "ALPHA": 0.3},
              "naive Bayes with word pairs and less smoothing is fast and robust on short texts"),
        _torch({"NGRAM_MAX": 2, "EMBED_DIM": 64, "EPOCHS": 8, "PATIENCE": 2},
               "word pairs capture negation and short phrases, and wider embeddings trained longer (stopping "
               "when the held-out accuracy stalls) can tell more of them apart"),
        _torch({"MODEL": "embedding_mlp", "DROPOUT": 0.3, "EPOCHS": 8, "PATIENCE": 2},
               "a hidden layer on the averaged embeddings models interactions between words, and dropout keeps "
               "it from memorising the training texts"),
        _torch({"LEARNING_RATE": 0.02, "EPOCHS": 6},
               "embeddings of rare words barely move at a small learning rate: a larger one trains them in a "
               "few epochs"),
    ),
    "time_series_forecasting": (
        _Idea({"MODEL": "autoregressive", "LAGS": None},
              "an autoregression on the last two seasons of values follows both the level and the "
              "seasonal shape of the series"),
        _Idea({"MODEL": "holt_winters", "DAMPED_TREND": False},
              "Holt-Winters smoothing tracks a changing level, trend and seasonal profile"),
        _Idea({"MODEL": "trend_seasonal"},
              "a linear trend plus a fixed seasonal profile extrapolates both the growth and the cycle"),
        _torch({"DIFFERENCE": True},
               "a network of levels cannot extrapolate a trend beyond the values it has seen; predicting the "
               "step-to-step changes can"),
        _torch({"MODEL": "gru", "HIDDEN": 32, "EPOCHS": 30, "PATIENCE": 5},
               "a GRU reads the window in order and can keep the seasonal phase in its state; early stopping "
               "on held-out windows guards against overfitting a short series"),
        _torch({"EPOCHS": 60, "LEARNING_RATE": 0.003, "PATIENCE": 8},
               "a smaller learning rate over more epochs, stopped by the held-out loss, fits the series more "
               "closely than 20 epochs at a large rate"),
    ),
    "time_series_classification": (
        _Idea({"MODEL": "random_forest", "FEATURE_SET": "rich", "N_ESTIMATORS": 300},
              "a random forest on summary statistics plus the shape of each series (segment means, "
              "autocorrelations, spectrum) sees both its level and its form, and tolerates shifts in time "
              "that defeat point-by-point distances"),
        _Idea({"MODEL": "hist_gradient_boosting", "FEATURE_SET": "rich", "N_ESTIMATORS": 200},
              "boosted trees on the rich shape features pick out the few that separate the classes"),
        _Idea({"MODEL": "knn", "FEATURE_SET": "raw", "NORMALIZE": True, "N_NEIGHBORS": 1},
              "one nearest neighbour on the z-normalised series is the classic strong baseline of time "
              "series classification: it compares whole shapes whatever their offset and scale"),
        _Idea({"MODEL": "logistic_regression", "FEATURE_SET": "rich", "C": 1.0},
              "a linear model on the rich features is fast and hard to overfit on few series"),
        _torch({"MODEL": "cnn", "CHANNELS": 16, "EPOCHS": 40, "PATIENCE": 8},
               "a wider 1-D convolutional network trained longer, stopping when the held-out accuracy stalls, "
               "learns local shapes wherever they occur in the series"),
        _torch({"AUGMENT_NOISE": 0.1, "EPOCHS": 40, "PATIENCE": 8},
               "jittering the training series with a little noise keeps a network from memorising a few hundred "
               "series, and the extra epochs let it learn from the varied copies"),
        _torch({"LEARNING_RATE": 0.003, "EPOCHS": 30},
               "a higher learning rate over 30 epochs lets the network converge where 10 epochs at 0.001 "
               "stop early"),
    ),
    "count_regression": (
        _Idea({"MODEL": "hist_gradient_boosting", "N_ESTIMATORS": 200, "MAX_DEPTH": 3, "LEARNING_RATE": 0.05},
              "boosted shallow trees with a Poisson loss model nonlinear effects and interactions on the "
              "log scale of the expected count"),
        _Idea({"MODEL": "poisson_glm", "ALPHA": 0.01},
              "a Poisson regression with a light penalty fits the log-linear effects that count data usually "
              "follow without shrinking them towards the mean"),
        _Idea({"MODEL": "random_forest", "N_ESTIMATORS": 300, "MAX_DEPTH": None, "MIN_SAMPLES_LEAF": 20},
              "a forest of Poisson trees with leaves of at least 20 rows averages away the noise of single counts"),
    ),
}


def module_constants(source: str) -> dict[str, Any]:
    """The literal values of the module-level UPPER_CASE constants of a Python file."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                try:
                    constants[name] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return constants


def literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def sed_command(settings: dict[str, Any], path: str = BASELINE) -> str:
    """`sed -i` replacing each `NAME = ...` line at the start of a line of `path`."""
    parts = []
    for name, value in settings.items():
        text = literal(value).replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
        if "'" in text:
            raise ValueError(f"cannot put {text} in a single-quoted sed script")
        parts.append(f"-e 's/^{name} = .*/{name} = {text}/'")
    return f"sed -i {' '.join(parts)} {path}"


def _thought(current: dict[str, Any], idea: _Idea) -> str:
    shown = {name: current[name] for name in idea.settings if name != "MODEL"}
    now = ", ".join(f"{name} = {literal(value)}" for name, value in shown.items())
    change = ", ".join(f"{name} = {literal(value)}" for name, value in idea.settings.items())
    return (
        f"{BASELINE} uses MODEL = {literal(current['MODEL'])}{f' ({now})' if now else ''}. "
        f"{idea.why[0].upper()}{idea.why[1:]}, so I set {change} in {BASELINE}."
    )


def candidate_edits(files: dict[str, str], task_type: str) -> list[Edit]:
    """Edits to try, most promising first; ideas the file cannot take (or already has) are left out."""
    current = module_constants(files.get(BASELINE, ""))
    if "MODEL" not in current:
        return []
    framework = current.get("FRAMEWORK", "sklearn")
    edits = []
    for idea in _IDEAS.get(task_type, ()):
        if idea.framework != framework or any(name not in current for name in idea.settings):
            continue
        if all(current[name] == value for name, value in idea.settings.items()):
            continue
        edits.append(Edit(_thought(current, idea), sed_command(idea.settings), dict(idea.settings)))
    return edits
