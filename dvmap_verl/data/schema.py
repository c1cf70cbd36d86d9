"""The one table of truth: WVS Wave 7 variables, DVMap attributes, questions and countries.

Labels are the release's exact strings (checked against its dev split). Where the release is not public
(cross-value wording, cross-country names), the entries are marked [G] and can be corrected here alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

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

IMPORTANCE = ("Very important", "Rather important", "Not very important", "Not at all important")
AGREE4 = ("Strongly agree", "Agree", "Disagree", "Strongly disagree")
AGREE5 = ("Agree strongly", "Agree", "Neither agree nor disagree", "Disagree", "Disagree strongly")
LOW_MEDIUM_HIGH = SCALE10_BINS.labels
TRUST = ("Trust completely", "Trust somewhat", "Do not trust very much", "Do not trust at all")
CONFIDENCE = ("A great deal", "Quite a lot", "Not very much", "None at all")
MENTIONED = ("Mentioned", "Not mentioned")

SOCIAL = "SOCIAL VALUES, ATTITUDES & STEREOTYPES"
HAPPINESS = "HAPPINESS AND WELL-BEING"
TRUST_CAT = "SOCIAL CAPITAL, TRUST & ORGANIZATIONAL MEMBERSHIP"
CORRUPTION = "CORRUPTION"
SECURITY = "SECURITY"


@dataclass(frozen=True)
class Question:
    qid: str
    category: str
    text: str
    options: tuple[str, ...]  # ordinal order (WVS code order)
    split: str = "train"  # "train" or "cross_value"
    scale10: bool = False  # a 1-10 scale binned with SCALE10_BINS
    reversed_max: int | None = None  # a polarity-reversed "<qid>P" column holds (reversed_max - original)

    @property
    def k(self) -> int:
        return len(self.options)

    def option_for_code(self, code: float) -> int | None:
        """Option index of a (non-negative) WVS code, or None when out of range."""
        if self.scale10:
            label = SCALE10_BINS.label(code)
            return None if label is None else self.options.index(label)
        i = int(code) - 1
        return i if 0 <= i < self.k and i + 1 == code else None


def _q(qid, category, text, options, split="train", scale10=False):
    # "…P" columns reverse a K-point item: original = (K + 1) - P. Q8P/Q9P are 0/1 (1 = mentioned): original = 2 - P.
    reversed_max = None if scale10 else (2 if options == MENTIONED else len(options) + 1)
    return Question(qid, category, text, tuple(options), split, scale10, reversed_max)


QUESTIONS: tuple[Question, ...] = (
    _q("Q1", SOCIAL, "How important is family in your life?", IMPORTANCE),
    _q("Q2", SOCIAL, "How important are friends in your life?", IMPORTANCE),
    _q("Q3", SOCIAL, "How important is leisure time in your life?", IMPORTANCE),
    _q("Q4", SOCIAL, "How important is politics in your life?", IMPORTANCE),
    _q("Q5", SOCIAL, "How important is work in your life?", IMPORTANCE),
    _q("Q6", SOCIAL, "How important is religion in your life?", IMPORTANCE),
    _q("Q27", SOCIAL, "Do you agree that one of your main goals in life has been to make your parents proud?", AGREE4),
    _q("Q29", SOCIAL, "Do you agree that on the whole, men make better political leaders than women do?", AGREE4),
    _q("Q36", SOCIAL, "Do you agree that homosexual couples are as good parents as other couples?", AGREE5),
    _q("Q46", HAPPINESS, "Taking all things together, would you say you are very happy, rather happy, not very happy, "
       "or not at all happy?", ("Very happy", "Rather happy", "Not very happy", "Not at all happy")),
    _q("Q49", HAPPINESS, "All things considered, how satisfied are you with your life as a whole these days? Using this "
       "card on which 1 means you are 'completely dissatisfied' and 10 means you are 'completely satisfied', where "
       "would you put your satisfaction with your life as a whole?", LOW_MEDIUM_HIGH, scale10=True),
    _q("Q50", HAPPINESS, "How satisfied are you with the financial situation of your household? Using this card on "
       "which 1 means you are 'completely dissatisfied' and 10 means you are 'completely satisfied'",
       LOW_MEDIUM_HIGH, scale10=True),
    _q("Q60", TRUST_CAT, "How much do you trust people you know personally: completely, somewhat, not very much, or "
       "not at all?", TRUST),
    _q("Q69", TRUST_CAT, "How much confidence do you have in the police: a great deal, quite a lot, not very much, or "
       "none at all?", CONFIDENCE),
    _q("Q112", CORRUPTION, "How would you rate corruption in your country on a scale from '1' meaning 'there is no "
       "corruption in my country' to '10' meaning 'there is abundant corruption in my country'?", LOW_MEDIUM_HIGH,
       scale10=True),
    _q("Q131", SECURITY, "How secure do you feel these days?",
       ("Very secure", "Quite secure", "Not very secure", "Not at all secure")),
    # Cross-value benchmark (unseen in training). Wording follows the WVS questionnaire in the release's style [G].
    _q("Q8", SOCIAL, "Here is a list of qualities that children can be encouraged to learn at home. Is independence "
       "a quality you consider to be especially important?", MENTIONED, split="cross_value"),
    _q("Q9", SOCIAL, "Here is a list of qualities that children can be encouraged to learn at home. Is hard work a "
       "quality you consider to be especially important?", MENTIONED, split="cross_value"),
    _q("Q37", SOCIAL, "Do you agree that it is a duty towards society to have children?", AGREE5, split="cross_value"),
    _q("Q61", TRUST_CAT, "How much do you trust people you meet for the first time: completely, somewhat, not very "
       "much, or not at all?", TRUST, split="cross_value"),
    _q("Q70", TRUST_CAT, "How much confidence do you have in the courts: a great deal, quite a lot, not very much, or "
       "none at all?", CONFIDENCE, split="cross_value"),
    _q("Q113", CORRUPTION, "How many of the state authorities do you believe are involved in corruption?",
       ("None of them", "Few of them", "Most of them", "All of them"), split="cross_value"),
    _q("Q132", SECURITY, "How frequently do robberies occur in your neighbourhood?",
       ("Very frequently", "Quite frequently", "Not frequently", "Not at all frequently"), split="cross_value"),
)
QUESTION_BY_ID = {q.qid: q for q in QUESTIONS}

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
