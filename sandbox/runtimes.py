"""Task runtime profiles: the Python packages task code may import, chosen by the `task_runtime` setting.

`sklearn` is the classic runtime (numpy, pandas, scikit-learn, statsmodels, pyarrow, datasets); `torch`
adds PyTorch for deep-learning tasks. The bwrap and process backends run task code with this interpreter's
environment, so a profile is usable there when its packages are installed here (`missing`); the docker
backend runs an image built per profile (`image_tag`, `build_packages`).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

RuntimeName = Literal["sklearn", "torch"]


@dataclass(frozen=True)
class Package:
    distribution: str  # the name pip installs
    module: str  # the name task code imports
    note: str = ""  # what task code should know about it, for the coder's prompt


@dataclass(frozen=True)
class Runtime:
    name: str
    packages: tuple[Package, ...]
    doc: str

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(p.module for p in self.packages)

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(p.distribution for p in self.packages)


SKLEARN_PACKAGES = (
    Package("numpy", "numpy"),
    Package("pandas", "pandas"),
    Package("scikit-learn", "sklearn"),
    Package("statsmodels", "statsmodels"),
    Package("pyarrow", "pyarrow"),
    Package("datasets", "datasets", "reads local files only: the sandbox has no network"),
)
TORCH = Package("torch", "torch", "no torchvision, torchaudio or torchtext; CPU unless the sandbox is given GPUs: "
                "pick the device with torch.cuda.is_available(); torch's threads follow OMP_NUM_THREADS")
RUNTIMES: dict[str, Runtime] = {
    "sklearn": Runtime("sklearn", SKLEARN_PACKAGES, "numpy, pandas, scikit-learn, statsmodels"),
    "torch": Runtime("torch", (*SKLEARN_PACKAGES, TORCH), "the sklearn runtime plus PyTorch"),
}
DEFAULT_RUNTIME = "sklearn"


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown task runtime {name!r}: choose one of {', '.join(RUNTIMES)}") from None


def missing(runtime: Runtime) -> list[str]:
    """The runtime's packages this interpreter cannot import (what the bwrap and process backends run)."""
    return [p.distribution for p in runtime.packages if importlib.util.find_spec(p.module) is None]


def unavailable(runtime: Runtime, backend: str) -> str | None:
    """Why task code of this runtime cannot run on the backend here (None: it can). The docker backend's
    image carries its own packages (built per runtime); bwrap and process run this interpreter's."""
    if backend == "docker":
        return None
    absent = missing(runtime)
    if not absent:
        return None
    return (f"task_runtime {runtime.name} needs {', '.join(absent)} in the task runtime, and this Python "
            f"cannot import it: run scripts/setup.sh (it installs torch==2.13.0) or set task_runtime=sklearn")


def installed_version(distribution: str) -> str | None:
    """The installed version without a local label (2.13.0+cpu -> 2.13.0), or None when not installed."""
    try:
        return md.version(distribution).split("+", 1)[0]
    except md.PackageNotFoundError:
        return None


def build_packages(runtime: Runtime, extra: Iterable[str] = ()) -> str:
    """pip requirements for the runtime's image: each package pinned to the version installed here (unpinned
    when not installed). A pin without a local label matches any build of that version (CPU or CUDA)."""
    out = []
    for name in (*runtime.distributions, *extra):
        version = installed_version(name)
        out.append(f"{name}=={version}" if version else name)
    return " ".join(out)


def image_tag(runtime: Runtime, repository: str = "gymforge-sandbox") -> str:
    """The docker backend's default image for a runtime: one image per profile."""
    return f"{repository}:latest" if runtime.name == DEFAULT_RUNTIME else f"{repository}:{runtime.name}"
