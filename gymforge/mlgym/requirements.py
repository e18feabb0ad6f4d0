"""Which Python environment an exported task needs in MLGym. MLGym's generic conda environment is built from
its dockerfiles/generic_conda_requirements.txt (numpy, pandas, scipy, torch, scikit-learn, tqdm, datasets,
gymnasium, transformers[torch], matplotlib; pyarrow comes with datasets). A task whose code imports anything
else (statsmodels, say) gets a requirements.txt of its own and `use_generic_conda: false`, MLGym's way of
giving a task its own environment. The imports are read from the task's Python files with `ast`; a file that
does not parse makes the task unusable (its needs cannot be read)."""

from __future__ import annotations

import ast
import sys

from gymforge.mlgym.records import TaskUnusable
from sandbox.runtimes import RUNTIMES, installed_version

# The top-level modules MLGym's generic environment provides (its requirements and what they bring).
GENERIC_MODULES = frozenset({
    "numpy", "pandas", "scipy", "torch", "sklearn", "tqdm", "datasets", "gymnasium", "transformers",
    "matplotlib", "pyarrow",
})
# Module name -> the distribution pip installs, for the packages gymforge's task runtimes carry.
DISTRIBUTIONS = {p.module: p.distribution for r in RUNTIMES.values() for p in r.packages}
FILE_NAME = "requirements.txt"


def imported_modules(files: dict[str, str]) -> set[str]:
    """The top-level third-party modules the task's .py files import (standard library and the task's own
    modules left out)."""
    own = {name.rsplit("/", 1)[-1].removesuffix(".py") for name in files if name.endswith(".py")}
    found: set[str] = set()
    for name, source in files.items():
        if not name.endswith(".py"):
            continue
        try:
            tree = ast.parse(source, filename=name)
        except SyntaxError as exc:
            raise TaskUnusable(f"{name} does not parse ({exc.msg}, line {exc.lineno}): its imports cannot be read") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in own and m != "__future__"}


def task_requirements(files: dict[str, str]) -> str | None:
    """A requirements.txt for the task when MLGym's generic environment lacks one of its imports, else None.
    It lists every third-party package the task imports, pinned to the version gymforge validated it with."""
    modules = imported_modules(files)
    if modules <= GENERIC_MODULES:
        return None
    lines = []
    for module in sorted(modules):
        dist = DISTRIBUTIONS.get(module, module)
        version = installed_version(dist)
        lines.append(f"{dist}=={version}" if version else dist)
    return "\n".join(lines) + "\n"
