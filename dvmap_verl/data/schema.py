"""The one table of truth: WVS Wave 7 variables, DVMap attributes, the paper's countries, and (from the default
question bank, ``question_bank.yaml``, read by :mod:`dvmap_verl.data.bank`) the paper's questions.

Labels are the release's exact strings (checked against its dev split). Where the release is not public
(cross-value wording, cross-country names), the entries are marked [G] and can be corrected here (countries) or in
the bank file (questions) alone. Other countries are named from ISO 3166 (:mod:`dvmap_verl.data.countries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from dvmap_verl.data.bank import Question, default_bank

NOT_ANSWERED = "Not Answered"

# ---------------------------------------------------------------------------------------------------------------
# Countries
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    name: str  # as in the release (UN style)
    iso3: str
    iso_num: int
    split: str  # "train" or "cross_country"


COUNTRIES: tuple[Country, ...] = (
    Country("United States of America", "USA", 840, "train"),
    Country("Canada", "CAN", 124, "train"),
    Country("United Kingdom of Great Britain and Northern Ireland", "GBR", 826, "train"),
    Country("Germany", "DEU", 276, "train"),
    Country("Brazil", "BRA", 76, "train"),
    Country("Russian Federation", "RUS", 643, "train"),
    Country("China", "CHN", 156, "train"),
    Country("Japan", "JPN", 392, "train"),
    Country("India", "IND", 356, "train"),
    Country("Egypt", "EGY", 818, "train"),
    # Cross-country benchmark: unseen in training. UN-style names [G]: the release's strings are not public here.
    Country("Nigeria", "NGA", 566, "cross_country"),
    Country("Iran (Islamic Republic of)", "IRN", 364, "cross_country"),
    Country("Pakistan", "PAK", 586, "cross_country"),
    Country("Indonesia", "IDN", 360, "cross_country"),
    Country("Viet Nam", "VNM", 704, "cross_country"),
    Country("Australia", "AUS", 36, "cross_country"),
    Country("Mexico", "MEX", 484, "cross_country"),
    Country("Türkiye", "TUR", 792, "cross_country"),
)
COUNTRY_BY_NUM = {c.iso_num: c for c in COUNTRIES}
COUNTRY_BY_NAME = {c.name: c for c in COUNTRIES}
TRAIN_COUNTRIES = tuple(c.name for c in COUNTRIES if c.split == "train")
CROSS_COUNTRIES = tuple(c.name for c in COUNTRIES if c.split == "cross_country")


# ---------------------------------------------------------------------------------------------------------------
# Binning of numeric variables
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bins:
    """Half-open ranges [lo, hi) mapped to labels, in order."""

    edges: tuple[tuple[float, float, str], ...]

    def label(self, value: float) -> str | None:
        for lo, hi, name in self.edges:
            if lo <= value < hi:
                return name
        return None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(name for _, _, name in self.edges)


# Paper Appendix A. Its ranges overlap at 35/51/65; half-open bins are our reading [G].
LIFE_STAGE_BINS = Bins((
    (0, 18, "Adolescence"),
    (18, 35, "Young Adulthood"),
    (35, 51, "Middle Adulthood"),
    (51, 65, "Late Adulthood"),
    (65, 200, "Older Adulthood"),
))
INCOME_BINS = Bins(((1, 4, "Low income"), (4, 8, "Middle income"), (8, 11, "High income")))
# 1-10 value scales (Q49, Q50, Q112): the paper gives no cut points; the income cuts fit the release's shares [G].
SCALE10_BINS = Bins(((1, 4, "Low"), (4, 8, "Medium"), (8, 11, "High")))

# ---------------------------------------------------------------------------------------------------------------
# The 11 demographic attributes
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    name: str  # release column name
    key: str  # snake_case key in extra_info
    variables: tuple[str, ...]  # WVS variables, first found wins
    labels: Mapping[int, str] = field(default_factory=dict)  # code -> release label
    bins: Bins | None = None  # numeric attributes
    allow_missing: bool = True  # False: respondents without it are dropped (never "Not Answered" in the release)
    file_labels: bool = False  # labels come from the data file's value labels when it has them


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("Country", "country", ("B_COUNTRY", "B_COUNTRY_ALPHA"), allow_missing=False),
    Attribute("Gender", "gender", ("Q260",), {1: "Male", 2: "Female"}, allow_missing=False),
    Attribute("Marital Status", "marital_status", ("Q273",), {
        1: "Married", 2: "Living together as married", 3: "Divorced", 4: "Separated", 5: "Widowed", 6: "Single",
    }),
    # Q274 is a count; the release writes the two states in lower case.
    Attribute("Has Children", "has_children", ("Q274",), bins=Bins((
        (0, 1, "has no children"), (1, 1000, "has at least one child"),
    ))),
    Attribute("Education Level", "education_level", ("Q275",), {
        0: "Early childhood education (ISCED 0) / no education",
        1: "Primary education (ISCED 1)",
        2: "Lower secondary education (ISCED 2)",
        3: "Upper secondary education (ISCED 3)",
        4: "Post-secondary non-tertiary education (ISCED 4)",
        5: "Short-cycle tertiary education (ISCED 5)",
        6: "Bachelor or equivalent (ISCED 6)",
        7: "Master or equivalent (ISCED 7)",
        8: "Doctoral or equivalent (ISCED 8)",
    }),
    Attribute("Occupation", "occupation", ("Q279",), {
        1: "Full time employee (30 hours a week or more)",
        2: "Part time employee (less than 30 hours a week)",
        3: "Self employed",
        4: "Retired/pensioned",
        5: "Housewife not otherwise employed",
        6: "Student",
        7: "Unemployed",
        8: "Other (write in):",
    }),
    Attribute("Work Nature", "work_nature", ("Q284",), {
        1: "Government or public institution",
        2: "Private business or industry",
        3: "Private non-profit organization",
    }),
    # Detailed denominations: the .sav/.dta value labels are authoritative; these codes are the ones we could
    # confirm [C]. A CSV (numeric codes only) with other codes needs --labels or the SPSS/Stata file.
    Attribute("Religion", "religion", ("Q289CS9", "Q289CS"), {
        10100000: "Roman Catholic; Latin Church;",
        50000000: "Islam; nfd",
        100000020: "Non-religious",
    }, file_labels=True),
    Attribute("Life Stage", "life_stage", ("Q262",), bins=LIFE_STAGE_BINS, allow_missing=False),
    Attribute("Income Bracket", "income_bracket", ("Q288",), bins=INCOME_BINS, allow_missing=False),
    Attribute("Common Language", "common_language", ("Q272",), {
        1240: "English", 3630: "Russian", 2020: "Japanese", 170: "Arabic",
    }, allow_missing=False, file_labels=True),
)
ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)
ATTRIBUTE_BY_NAME = {a.name: a for a in ATTRIBUTES}
ATTRIBUTE_KEYS = {a.name: a.key for a in ATTRIBUTES}

# ---------------------------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------------------------

# The questions are data: the paper's 23 are the default question bank, dvmap_verl/data/question_bank.yaml
# (schema: dvmap_verl/data/bank.py). ``dvmap prepare wvs --bank`` reads another; these names are the default's.
QUESTIONS: tuple[Question, ...] = default_bank().questions
QUESTION_BY_ID = {q.qid: q for q in QUESTIONS}
IMPORTANCE = QUESTION_BY_ID["Q1"].options
LOW_MEDIUM_HIGH = SCALE10_BINS.labels

#: Scale-direction anchors for reading polarity-reversed ``…P`` columns the right way round. Q1 (family) has the
#: mode "Very important" in every WVS country. These items lean to their first options (important, agree, happy,
#: trust, confidence, secure) in any pool of DVMap countries: 70-98 % of the release's dev answers fall in the first
#: half of the scale, against 50 % for a direction-neutral item such as Q4 or Q6. A pooled first-half share under
#: one half therefore means the column was read reversed.
LEANS_TO_FIRST_OPTIONS = ("Q2", "Q3", "Q5", "Q27", "Q46", "Q60", "Q69", "Q131")
TRAIN_QUESTIONS = tuple(q.qid for q in QUESTIONS if q.split == "train")
CROSS_VALUE_QUESTIONS = tuple(q.qid for q in QUESTIONS if q.split == "cross_value")

# Release corpus columns, in the release's order.
RELEASE_COLUMNS = ("Q_id",) + ATTRIBUTE_NAMES + ("frequency", "Category", "Question", "prompt", "Options", "answer")

# Split names used in file names, data_source and extra_info.
SPLITS = ("train", "val", "cross_demographic", "cross_country", "cross_value")
