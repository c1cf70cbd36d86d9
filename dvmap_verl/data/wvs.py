"""Reading raw WVS Wave 7 files (CSV, SPSS .sav, Stata .dta, parquet) into one respondent table.

Only the variables DVMap needs are read. The result has the 11 attributes as release labels and one column per
question holding the option index (0-based, ordinal order) or <NA>.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from dvmap_verl.data import countries as C
from dvmap_verl.data import schema
from dvmap_verl.data.bank import BankError, Question, QuestionBank, default_bank
from dvmap_verl.data.schema import ATTRIBUTES, NOT_ANSWERED, Attribute
from dvmap_verl.errors import InputError

log = logging.getLogger(__name__)

#: Marker column written by ``dvmap synth-wvs``; its presence makes every output say "synthetic".
SYNTHETIC_MARKER = "DVMAP_SYNTHETIC"
#: The WVS interview id: with the country, it names one respondent (read when present, for the duplicate check).
ID_VARIABLE = "D_INTERVIEW"


class WVSInputError(InputError):
    """A WVS input problem; the message names the file and the variable or value."""


class BankEntryError(WVSInputError, BankError):
    """A question-bank entry that the data file contradicts (its column absent, codes its options leave out)."""


#: The joint EVS/WVS 2017-2022 file (GESIS ZA7505) under WVS-7 names: WVS-7 variable -> the joint file's
#: variable(s). Several: the first non-missing (>= 0) per respondent (income is split by study: WVS cases in
#: X047_WVS7, EVS cases in X047E_EVS5). ``cntry_AN`` holds ISO alpha-2 codes (WVS-7's B_COUNTRY_ALPHA: alpha-3).
#: A029/A030 (child qualities) are 1 mentioned / 0 not, the convention of WVS-7's Q8P/Q9P. Names from the joint
#: codebook as used in public analysis code [C]; E268 (Q112, corruption 1-10) and H001 (Q131, secure) are our
#: reading [G]; Q37, Q113, Q132 are left out (not confirmed): give them through a --bank entry naming the joint
#: variable.
JOINT_LAYOUT: dict[str, tuple[str, ...]] = {
    "B_COUNTRY": ("CNTRY",), "B_COUNTRY_ALPHA": ("CNTRY_AN",), ID_VARIABLE: ("UNIQID",),
    "Q260": ("X001",), "Q262": ("X003",), "Q273": ("X007",), "Q274": ("X011",), "Q275": ("X025A_01",),
    "Q279": ("X028",), "Q284": ("X052",), "Q288": ("X047_WVS7", "X047E_EVS5"), "Q289CS9": ("F025",),
    "Q272": ("G016",),
    "Q1": ("A001",), "Q2": ("A002",), "Q3": ("A003",), "Q4": ("A004",), "Q5": ("A005",), "Q6": ("A006",),
    "Q8P": ("A029",), "Q9P": ("A030",), "Q27": ("D054",), "Q29": ("D059",), "Q36": ("D081",), "Q46": ("A008",),
    "Q49": ("A170",), "Q50": ("C006",), "Q60": ("G007_33_B",), "Q61": ("G007_34_B",), "Q69": ("E069_06",),
    "Q70": ("E069_17",), "Q112": ("E268",), "Q131": ("H001",),
}
LAYOUTS = ("wvs7", "joint")


@dataclass
class WVSData:
    frame: pd.DataFrame  # raw numeric codes (B_COUNTRY_ALPHA as text), canonical upper-case names
    value_labels: dict[str, dict[int, str]]  # from SPSS/Stata metadata; empty for CSV/parquet
    path: Path
    synthetic: bool = False
    columns_read: list[str] = field(default_factory=list)
    bank: QuestionBank = field(default_factory=default_bank)
    weights: str | None = None  # the survey-weight column read (canonical name), if any
    layout: str = "wvs7"


def _wanted_variables(bank: QuestionBank, weights: str | None = None) -> list[str]:
    names = [v for a in ATTRIBUTES for v in a.variables]
    for q in bank.questions:
        names += list(q.columns)
    return names + [ID_VARIABLE, SYNTHETIC_MARKER] + ([weights.upper()] if weights else [])


def read_wvs(path: str | Path, labels: str | Path | None = None, bank: QuestionBank | None = None,
             weights: str | None = None) -> WVSData:
    """Read the DVMap variables from a WVS file; raise :class:`WVSInputError` naming what is wrong.

    ``labels``: a JSON file ``{variable: {code: label}}`` adding value labels (a CSV has none). Without it, a
    ``<file>.labels.json`` beside the data file is used when present. ``bank``: the questions to read (default: the
    paper's). ``weights``: a survey-weight column to read (``W_WEIGHT``; ``S018`` in the joint EVS/WVS file). A file
    in the joint EVS/WVS layout (``cntry`` instead of ``B_COUNTRY``) is read through :data:`JOINT_LAYOUT`.
    """
    path = Path(path)
    bank = bank or default_bank()
    if not path.exists():
        raise WVSInputError(f"{path}: no such file")
    if path.is_dir():
        raise WVSInputError(f"{path}: is a folder; give the WVS data file (.csv, .sav, .dta or .parquet)")
    suffix = path.suffix.lower()
    readers = {".csv": _read_csv, ".txt": _read_csv, ".sav": _read_spss, ".zsav": _read_spss, ".dta": _read_stata,
               ".parquet": _read_parquet}
    if suffix not in readers:
        raise WVSInputError(f"{path}: unsupported file type {suffix!r} (use .csv, .sav, .dta or .parquet; "
                            f"convert .rds with R's write.csv or haven::write_sav)")
    want = _Want(bank, weights.strip().upper() if weights else None)
    try:
        frame, frame_labels = readers[suffix](path, want)
    except WVSInputError:
        raise
    except Exception as e:  # parser errors of four libraries: say which file, keep the cause
        raise WVSInputError(f"{path}: cannot read as {suffix[1:]} ({type(e).__name__}: {e})") from e
    if len(frame) == 0:
        raise WVSInputError(f"{path}: the table is empty (no respondents)")
    value_labels = frame_labels
    sidecar = Path(labels) if labels else path.with_name(path.name + ".labels.json")
    if labels or sidecar.exists():
        canonical = {col.strip().upper(): canon for canon, cols in want.chosen.items() for col in cols}
        for var, mapping in read_labels(sidecar).items():  # a joint-layout file's labels name its own columns
            value_labels.setdefault(canonical.get(var, var), {}).update(mapping)
    synthetic = SYNTHETIC_MARKER in frame.columns
    return WVSData(frame, value_labels, path, synthetic, list(frame.columns), bank, want.weights, want.layout)


def read_labels(path: Path) -> dict[str, dict[int, str]]:
    import json

    try:
        raw = json.loads(Path(path).read_text())
        return {str(var).upper(): {int(code): str(label) for code, label in m.items()} for var, m in raw.items()}
    except FileNotFoundError:
        raise WVSInputError(f"{path}: labels file not found") from None
    except (ValueError, AttributeError, TypeError) as e:
        raise WVSInputError(f"{path}: not a labels JSON of the form {{variable: {{code: label}}}} ({e})") from None


@dataclass
class _Want:
    """What to read: the bank's questions, the attributes, the weight; set by :func:`_select` to the file's names."""

    bank: QuestionBank
    weights: str | None
    layout: str = "wvs7"
    chosen: dict[str, list[str]] = field(default_factory=dict)  # canonical name -> the file's column(s)

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for cols in self.chosen.values() for c in cols))

    def rename(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The file's columns under canonical names (several: the first non-missing, >= 0, per row)."""
        out = {}
        for canon, cols in self.chosen.items():
            col = frame[cols[0]] if len(cols) == 1 else pd.to_numeric(frame[cols[0]], errors="coerce")
            for other in cols[1:]:
                b = pd.to_numeric(frame[other], errors="coerce")
                col = col.where(col >= 0, b.where(b >= 0, col))
            out[canon] = col
        return pd.DataFrame(out, index=frame.index)


def _select(available: list[str], path: Path, want: _Want | None = None) -> dict[str, str]:
    """canonical upper-case name -> the file's own spelling, for the variables we want that the file has (sets
    ``want.chosen``; several file columns for one name in the joint layout: see :data:`JOINT_LAYOUT`)."""
    want = want or _Want(default_bank(), None)
    by_upper = {c.strip().strip('"').upper(): c for c in available}
    joint = not {"B_COUNTRY", "B_COUNTRY_ALPHA"} & set(by_upper) and bool({"CNTRY", "CNTRY_AN"} & set(by_upper))
    want.layout = "joint" if joint else "wvs7"
    chosen: dict[str, list[str]] = {}
    for v in _wanted_variables(want.bank, want.weights):
        if v in by_upper:
            chosen[v] = [by_upper[v]]
        elif joint and any(a in by_upper for a in JOINT_LAYOUT.get(v, ())):
            chosen[v] = [by_upper[a] for a in JOINT_LAYOUT[v] if a in by_upper]
    missing = []
    for a in ATTRIBUTES:
        if not any(v in chosen for v in a.variables):
            missing.append(f"{a.name} ({' or '.join(a.variables)})")
    for q in want.bank.questions:
        if q.required and not any(c in chosen for c in q.columns):
            missing.append(f"{' (or '.join(q.columns)}{')' * (len(q.columns) - 1)}"
                           + (f" for bank entry {q.qid} of {want.bank.source}" if q.variable != q.qid else ""))
    if want.weights and want.weights not in chosen:
        raise WVSInputError(f"{path}: --weights {want.weights}: the file has no such column")
    if missing:
        where = "" if want.bank.source == "default" else f" (question bank {want.bank.source})"
        raise BankEntryError(f"{path}: missing required WVS variable(s){where}: {', '.join(missing)}")
    want.chosen = chosen
    return {k: v[0] for k, v in chosen.items()}


def select_columns(available: list[str], path: str | Path, bank: QuestionBank | None = None,
                   weights: str | None = None) -> list[str]:
    """The file's columns that :func:`read_wvs` reads, from its column names ``available`` (for benchmarks that
    read the same columns with another reader). Raises what :func:`read_wvs` raises for missing ones."""
    want = _Want(bank or default_bank(), weights.strip().upper() if weights else None)
    _select(available, Path(path), want)
    return want.columns


def _read_csv(path: Path, want: _Want) -> tuple[pd.DataFrame, dict]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8-sig", "replace").rstrip("\r\n")
    if not header:
        raise WVSInputError(f"{path}: the file is empty")
    delimiter = max([",", ";", "\t"], key=header.count)
    names = [h.strip().strip('"') for h in header.split(delimiter)]
    chosen = _select(names, path, want)
    # Types are inferred (a stray text value must not abort the read: the checks below name it);
    # only the ISO3 country column is text by definition.
    types = {orig: pa.string() for canon, orig in chosen.items() if canon == "B_COUNTRY_ALPHA"}
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(include_columns=want.columns, column_types=types,
                                             null_values=["", " ", "NA", "NaN", "."], strings_can_be_null=True),
    )
    return want.rename(table.to_pandas()), {}


def _read_parquet(path: Path, want: _Want) -> tuple[pd.DataFrame, dict]:
    import pyarrow.parquet as pq

    _select(pq.read_schema(path).names, path, want)
    return want.rename(pq.read_table(path, columns=want.columns).to_pandas()), {}


def _read_readstat(path: Path, reader, want: _Want) -> tuple[pd.DataFrame, dict]:
    _, meta = reader(str(path), metadataonly=True)
    _select(list(meta.column_names), path, want)
    frame, meta = reader(str(path), usecols=want.columns, apply_value_formats=False)
    labels = {}
    file_labels = meta.variable_value_labels or {}
    for canon, cols in want.chosen.items():
        for col in cols:
            mapping = file_labels.get(col, {})
            labels.setdefault(canon, {}).update({int(float(k)): str(v) for k, v in mapping.items() if _is_int(k)})
    return want.rename(frame), {k: v for k, v in labels.items() if v}


def _read_spss(path: Path, want: _Want):
    import pyreadstat

    return _read_readstat(path, pyreadstat.read_sav, want)


def _read_stata(path: Path, want: _Want):
    import pyreadstat

    return _read_readstat(path, pyreadstat.read_dta, want)


def _is_int(v: Any) -> bool:
    try:
        return float(v) == int(float(v))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------------------
# Codes -> DVMap respondent table
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Respondents:
    frame: pd.DataFrame  # 11 attribute columns (category) + one Int8 column per question present
    questions: list[str]  # question ids present
    stats: dict[str, Any]
    weights: np.ndarray | None = None  # survey weight of each row of frame (float64), when --weights was given


def _numeric(frame: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    s = frame[col]
    if s.dtype == object or str(s.dtype).startswith("str"):
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _label_lookup(labels: Mapping[int, str]) -> dict[str, int]:
    """Label text (case-folded, with and without a leading code) -> code."""
    lookup: dict[str, int] = {}
    for code, label in labels.items():
        for form in (str(label), _clean_label(str(label))):
            lookup.setdefault(form.strip().casefold(), int(code))
    return lookup


def _codes(data: WVSData, col: str, stats: dict) -> np.ndarray:
    """Numeric codes of a column that must hold codes (float64, NaN missing).

    Text that is not a number (a file exported with value labels: ``Very important`` in ``Q1P``) is mapped back
    to its code through the value labels at hand (the .sav/.dta's own, ``--labels``) and counted in
    ``stats["values_coerced"][col]``; text no label maps is a :class:`WVSInputError` naming the column, its first
    offending values and the fix. Nothing is turned into missing silently."""
    s = data.frame[col]
    if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    text = s.astype("string").str.strip()
    codes = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (text.notna().to_numpy() & np.isnan(codes))
    if bad.any():
        words = text[bad]
        mapped = words.str.casefold().map(_label_lookup(data.value_labels.get(col, {})))
        if mapped.isna().any():
            first = list(dict.fromkeys(words[mapped.isna()].tolist()))[:3]
            raise WVSInputError(
                f"{data.path}: column {col} must hold numeric codes but holds text in {int(mapped.isna().sum()):,} "
                f"row(s), first values {first}: the file looks exported with value labels instead of codes. Give "
                f"the .sav or .dta file (codes and labels both), export codes, or pass --labels with a JSON "
                f"{{\"{col}\": {{\"<code>\": \"{first[0]}\", ...}}}} that maps each text to its code")
        codes[bad] = mapped.to_numpy(dtype=np.float64)
        stats.setdefault("values_coerced", {})[col] = int(bad.sum())
        log.warning("%s: %s: %d text value(s) mapped back to codes through the value labels", data.path, col,
                    int(bad.sum()))
    return codes


def _count_out_of_range(stats: dict, col: str, n: int) -> None:
    if n:
        stats.setdefault("values_out_of_range", {})[col] = int(n)


def _duplicates(data: WVSData, names: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows that repeat an earlier respondent: same country and D_INTERVIEW (rows with an id), identical in
    every column read (rows without one). Returns the mask (first occurrences False) and how they were matched."""
    f = data.frame
    country = "B_COUNTRY" if "B_COUNTRY" in f.columns else "B_COUNTRY_ALPHA"
    if ID_VARIABLE in f.columns:
        has_id = f[ID_VARIABLE].notna().to_numpy()
        dup = np.zeros(len(f), dtype=bool)
        dup[has_id] = f.loc[has_id, [country, ID_VARIABLE]].duplicated(keep="first").to_numpy()
        if not has_id.all():
            dup[~has_id] = f.loc[~has_id].duplicated(keep="first").to_numpy()
        return dup, f"same country and {ID_VARIABLE}"
    return f.duplicated(keep="first").to_numpy(), (
        f"identical in all {f.shape[1]} columns read; the file has no {ID_VARIABLE}, which would tell two "
        f"respondents who answered alike apart")


def _check_duplicates(data: WVSData, names: np.ndarray, drop: bool, stats: dict) -> np.ndarray:
    """Mask of rows to keep; duplicated respondents are an error unless ``drop`` (then the first is kept)."""
    dup, how = _duplicates(data, names)
    n = int(dup.sum())
    stats["duplicate_respondents_dropped"] = n if drop else 0
    if n and not drop:
        where = pd.Series(names[dup]).fillna("other countries").value_counts()
        ids = list(dict.fromkeys(data.frame[ID_VARIABLE].to_numpy()[dup].tolist()))[:3] \
            if ID_VARIABLE in data.frame.columns else []
        example = (f"{ID_VARIABLE} {', '.join(str(int(i)) if _is_int(i) else str(i) for i in ids)}"
                   if ids and how.startswith("same") else
                   f"data rows {', '.join(str(int(i) + 1) for i in np.flatnonzero(dup)[:3])}")
        raise WVSInputError(
            f"{data.path}: {n:,} duplicated respondent(s) ({how}) in "
            f"{', '.join(f'{c} ({k:,})' for c, k in where.items())}, e.g. {example}: a country appended twice? "
            f"Remove them, or pass --drop-duplicate-respondents to keep the first of each")
    if n:
        log.warning("%s: dropped %d duplicated respondent(s) (%s)", data.path, n, how)
    return ~dup


def _country_names(data: WVSData) -> tuple[np.ndarray, np.ndarray]:
    """Per respondent: the country's corpus name (None where the code names no country) and its code as text.

    Names from ISO 3166 (:mod:`dvmap_verl.data.countries`), else the file's value label of the code."""
    f, path = data.frame, data.path
    if "B_COUNTRY" in f.columns:
        codes = _numeric(f, "B_COUNTRY", path)
        bad = ~np.isfinite(codes) | (codes <= 0) | (codes > 999) | (codes != np.round(codes))
        if bad.any():
            example = f["B_COUNTRY"].to_numpy()[bad][0]
            raise WVSInputError(f"{path}: column B_COUNTRY has {int(bad.sum())} value(s) that are not ISO 3166 "
                                f"numeric country codes, e.g. {example!r}")
        keys = pd.Series(codes.astype(np.int64))
        labels = data.value_labels.get("B_COUNTRY", {})
        lookup = {int(c): C.name_for_numeric(c) or (_clean_label(labels[c]) if c in labels else None)
                  for c in keys.unique()}
    else:
        keys = f["B_COUNTRY_ALPHA"].astype("string").str.strip().str.upper()
        if keys.isna().any() or (~keys.str.len().isin([2, 3])).any():
            example = f["B_COUNTRY_ALPHA"][keys.isna() | ~keys.str.len().isin([2, 3])].iloc[0]
            raise WVSInputError(f"{path}: column B_COUNTRY_ALPHA has values that are not ISO 3166 alpha-3 (or, in "
                                f"the joint EVS/WVS file's cntry_AN, alpha-2) codes, e.g. {example!r}")
        lookup = {c: C.name_for_alpha(c) for c in keys.unique()}
    return keys.map(lookup).to_numpy(dtype=object), keys.astype(str).to_numpy(dtype=object)


def countries_in(data: WVSData) -> list[str]:
    """The names of the countries in the file, in order of first appearance (codes naming no country left out)."""
    names, _ = _country_names(data)
    return [n for n in pd.unique(names) if isinstance(n, str)]


def _labels_for(attr: Attribute, data: WVSData) -> dict[int, str]:
    labels = dict(attr.labels)
    if attr.file_labels:
        for var in attr.variables:
            labels.update({k: _clean_label(v) for k, v in data.value_labels.get(var, {}).items() if k >= 0})
    return labels


def _clean_label(label: str) -> str:
    # SPSS labels often carry the code: "10100000 Roman Catholic; Latin Church;" -> keep the text.
    head, _, rest = label.partition(" ")
    return rest.strip() if head.lstrip("-").isdigit() and rest.strip() else label.strip()


def _attribute_labels(attr: Attribute, data: WVSData, stats: dict) -> pd.Categorical:
    """Release labels as a Categorical (missing -> "Not Answered", or <NA> when the attribute is required)."""
    var = next(v for v in attr.variables if v in data.frame.columns)
    codes = _codes(data, var, stats)
    uniq, inverse = np.unique(codes, return_inverse=True)  # a few dozen distinct codes: label those, not rows
    counts = np.bincount(inverse, minlength=len(uniq))
    labels = {} if attr.bins is not None else _labels_for(attr, data)
    names: list[str | None] = []
    unlabelled: dict[str, int] = {}
    out_of_range = 0  # codes no bin holds, or not whole numbers: missing, and counted
    for code, n in zip(uniq, counts):
        if not np.isfinite(code) or code < 0:
            name = None
        elif attr.bins is not None:
            name = attr.bins.label(code)
            out_of_range += int(n) * (name is None)
        elif code != int(code):
            name = None
            out_of_range += int(n)
        else:
            name = labels.get(int(code)) if code == int(code) else None
            if name is None:
                # A CSV has numeric codes only: keep the code visible rather than merging it into another group.
                unlabelled[str(int(code))] = int(n)
                name = f"{attr.name} code {int(code)}"
        names.append(name if name is not None else (NOT_ANSWERED if attr.allow_missing else None))
    _count_out_of_range(stats, var, out_of_range)
    if unlabelled:
        stats.setdefault("unlabelled_codes", {})[attr.name] = unlabelled
        log.warning("%s: %d respondents have %s codes without a label (%s); give --labels or use the SPSS/Stata "
                    "file for its value labels", data.path, sum(unlabelled.values()), var, ", ".join(unlabelled))
    categories = list(dict.fromkeys(n for n in names if n is not None))
    position = {c: i for i, c in enumerate(categories)}
    code_of = np.array([position.get(n, -1) if n is not None else -1 for n in names], dtype=np.int32)
    return pd.Categorical.from_codes(code_of[inverse] if len(uniq) else np.empty(0, np.int32), categories=categories)


def _question_codes(q: Question, data: WVSData, stats: dict) -> tuple[np.ndarray, str] | None:
    """Option indices of bank entry ``q`` (-1 missing) and the column read: its variable, else its polarity-reversed
    one (original = reversed_sum - code). None when the file has neither.

    Negative codes are WVS's own missing codes; a code outside the entry's codes that is not an answer (99, 2.5) is
    missing too, and counted in ``stats["values_out_of_range"][column]``. A code that is an answer the entry's
    options leave out (the file labels it, or it lies inside the entry's code range or just above it) is a
    :class:`BankEntryError` naming the entry."""
    col = next((c for c in q.columns if c in data.frame.columns), None)
    if col is None:
        return None
    raw = _codes(data, col, stats)
    reversed_ = col != q.variable
    codes = np.where(raw >= 0, q.reversed_max - raw, raw) if reversed_ else raw  # negative codes stay missing
    out = q.options_of(codes)
    ok = np.isfinite(raw) & (raw >= 0)
    unmapped = ok & (out < 0)
    if unmapped.any():
        _check_coverage(q, col, data, codes[unmapped], reversed_)
        if not (out >= 0).any():  # not one answer fits: a wrong column or wrong codes, not a few stray values
            seen = np.unique(codes[unmapped])
            shown = ", ".join(f"{v:g}" for v in seen[:5]) + (f", ... ({len(seen)} distinct)" if len(seen) > 5 else "")
            raise BankEntryError(
                f"{data.path}: question bank {data.bank.source}: entry {q.qid}: none of column {col}'s "
                f"{int(unmapped.sum()):,} non-missing value(s) ({shown}) is one of its codes ({_codes_text(q)}); "
                f"check the entry's variable and codes")
    _count_out_of_range(stats, col, int(unmapped.sum()))
    return out, col


def _check_coverage(q: Question, col: str, data: WVSData, codes: np.ndarray, reversed_: bool) -> None:
    """Refuse answer codes that no option of ``q`` holds (see :func:`_question_codes`)."""
    lo, hi = q.code_range
    labelled = {(q.reversed_max - c) if reversed_ else c: text
                for c, text in data.value_labels.get(col, {}).items() if c >= 0}
    whole = codes[codes == np.round(codes)].astype(np.int64)
    values, counts = np.unique(whole, return_counts=True)
    answers = [(int(v), int(n)) for v, n in zip(values, counts) if v in labelled or lo <= v <= hi + 1]
    if answers:
        shown = ", ".join(f"{v}{' ' + repr(labelled[v]) if v in labelled else ''} ({n:,} respondents)"
                          for v, n in answers[:5])
        how = f" (as original codes = {q.reversed_max} - {col})" if reversed_ else ""
        raise BankEntryError(
            f"{data.path}: question bank {data.bank.source}: entry {q.qid}: column {col} holds answer code(s) "
            f"{shown}{how} that its options {list(q.options)} (codes {_codes_text(q)}) do not cover: add the "
            f"option(s) or bin the codes in the entry's codes")


def _codes_text(q: Question) -> str:
    per: dict[int, list[int]] = {}
    for c, i in q.codes:
        per.setdefault(i, []).append(c)
    return ", ".join(f"{'/'.join(map(str, sorted(v)))}" for _, v in sorted(per.items()))


def _weights(data: WVSData, keep: np.ndarray) -> np.ndarray | None:
    """The survey weights (float64) of the ``keep`` rows; :class:`WVSInputError` for a missing, negative or
    non-finite one among them (rows of countries not prepared are not checked)."""
    if not data.weights:
        return None
    w = _codes(data, data.weights, {})
    bad = (~np.isfinite(w) | (w < 0)) & keep
    if bad.any():
        rows = np.flatnonzero(bad)
        raise WVSInputError(f"{data.path}: --weights {data.weights}: {len(rows):,} row(s) without a finite, "
                            f"non-negative weight, e.g. data rows {', '.join(str(i + 1) for i in rows[:3])} "
                            f"({', '.join(repr(v) for v in data.frame[data.weights].to_numpy()[rows[:3]].tolist())})")
    return w[keep]


def build_respondents(data: WVSData, countries: tuple[str, ...] | None = None,
                      drop_duplicates: bool = False) -> Respondents:
    """Map codes to labels and option indices; drop respondents outside ``countries`` (default: the paper's 18)
    or without a required attribute.

    Duplicated respondents (see :func:`_duplicates`) are a :class:`WVSInputError` unless ``drop_duplicates`` (the
    first of each is kept, the count recorded). ``stats`` counts every value turned into something else:
    ``values_coerced`` (text mapped to codes through labels) and ``values_out_of_range`` (codes outside a scale),
    per column. With ``data.weights``, :attr:`Respondents.weights` holds each kept respondent's survey weight."""
    stats: dict[str, Any] = {"input": str(data.path), "respondents_read": int(len(data.frame)),
                             "values_coerced": {}, "values_out_of_range": {}}
    names, keys = _country_names(data)
    wanted = set(countries or C.PAPER_DESIGN.all)
    in_scope = pd.Series(names).isin(wanted).to_numpy()
    other = pd.Series(keys[~in_scope]).value_counts()
    stats["other_countries_skipped"] = {str(k): int(v) for k, v in other.items()}
    unique = _check_duplicates(data, names, drop_duplicates, stats)
    keep = in_scope & unique
    if not keep.any():
        raise WVSInputError(f"{data.path}: none of the DVMap countries ({', '.join(sorted(wanted))}) is in the file")
    cols: dict[str, Any] = {"Country": pd.Categorical(names)}
    for attr in ATTRIBUTES[1:]:
        cols[attr.name] = _attribute_labels(attr, data, stats)
        keep &= cols[attr.name].codes >= 0
    questions, read_from = [], {}
    for q in data.bank.questions:
        got = _question_codes(q, data, stats)
        if got is not None:
            cols[q.qid], read_from[q.qid] = got
            questions.append(q.qid)
    stats["questions_missing"] = [q.qid for q in data.bank.questions if q.qid not in questions]
    frame = pd.DataFrame({k: v[keep] for k, v in cols.items()})
    weights = _weights(data, keep)
    stats["respondents_kept"] = int(len(frame))
    stats["respondents_dropped_missing_required"] = int((in_scope & unique).sum() - len(frame))
    _direction(frame, data, read_from, stats)
    return Respondents(frame, questions, stats, weights)


def _direction(frame: pd.DataFrame, data: WVSData, read_from: dict[str, str], stats: dict) -> None:
    direction = check_scale_direction(frame, data.path, read_from, bank=data.bank)
    stats["scale_direction_checked"] = direction["checked"]
    if direction["reversed_columns_without_anchor"]:
        stats["reversed_columns_without_anchor"] = direction["reversed_columns_without_anchor"]
        if not any(read_from.get(q, "").endswith("P") for q in direction["checked"]):
            log.warning("%s: reversed columns %s were turned back by the WVS convention, but no anchored reversed "
                        "column confirms that this file follows it", data.path,
                        ", ".join(direction["reversed_columns_without_anchor"]))


def check_scale_direction(frame: pd.DataFrame, path: Path, columns: dict[str, str] | None = None,
                          min_answers: int = 30, min_pooled: int = 200,
                          bank: QuestionBank | None = None) -> dict[str, list[str]]:
    """Refuse a reversed scale, for every item that has a direction anchor (:data:`schema.LEANS_TO_FIRST_OPTIONS`
    and Q1); ``columns`` maps each question to the column read (``Q2P`` for a polarity-reversed one). Returns the
    questions checked and the reversed columns that no anchor covers (their direction rests on the file's
    convention, which the anchored columns confirm). An anchor applies where ``bank``'s entry of that id has the
    paper's options (the same item)."""
    columns = columns or {}
    checked = []
    bank = bank or default_bank()

    def same_item(qid: str) -> bool:
        q = bank.by_id.get(qid)
        return qid in frame.columns and q is not None and q.options == schema.QUESTION_BY_ID[qid].options

    if same_item("Q1"):
        for country, answers in frame.groupby("Country", observed=True)["Q1"]:
            a = answers[answers >= 0]
            if len(a) >= min_answers and a.mode().iloc[0] != 0:
                raise WVSInputError(
                    f"{path}: {columns.get('Q1', 'Q1')} (importance of family) in {country} has mode "
                    f"{schema.IMPORTANCE[int(a.mode().iloc[0])]!r}, not 'Very important': the scale looks reversed "
                    f"(a polarity-reversed Q1P column read as Q1, or recoded data)")
        checked.append("Q1")
    for qid in schema.LEANS_TO_FIRST_OPTIONS:
        if not same_item(qid):
            continue
        q = schema.QUESTION_BY_ID[qid]
        a = frame[qid].to_numpy()
        a = a[a >= 0]
        if len(a) < min_pooled:
            continue
        first = float((a < q.k // 2).mean())
        second = float((a >= q.k - q.k // 2).mean())
        if first < second:
            col = columns.get(qid, qid)
            how = "a polarity-reversed column turned the wrong way" if col.endswith("P") else \
                "a reversed column under the original's name"
            raise WVSInputError(
                f"{path}: {col} ({q.text!r}) has {second:.0%} of its answers on the {q.options[-1]!r} side and "
                f"{first:.0%} on the {q.options[0]!r} side, where every WVS country pool leans to "
                f"{q.options[0]!r}: the scale looks reversed ({how}, or recoded data)")
        checked.append(qid)
    unanchored = [c for q, c in columns.items() if c.endswith("P") and q not in checked]
    return {"checked": checked, "reversed_columns_without_anchor": unanchored}
