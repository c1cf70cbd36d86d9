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

from dvmap_verl.data import schema
from dvmap_verl.data.schema import ATTRIBUTES, NOT_ANSWERED, QUESTIONS, Attribute
from dvmap_verl.errors import InputError

log = logging.getLogger(__name__)

#: Marker column written by ``dvmap synth-wvs``; its presence makes every output say "synthetic".
SYNTHETIC_MARKER = "DVMAP_SYNTHETIC"
#: The WVS interview id: with the country, it names one respondent (read when present, for the duplicate check).
ID_VARIABLE = "D_INTERVIEW"


class WVSInputError(InputError):
    """A WVS input problem; the message names the file and the variable or value."""


@dataclass
class WVSData:
    frame: pd.DataFrame  # raw numeric codes (B_COUNTRY_ALPHA as text), canonical upper-case names
    value_labels: dict[str, dict[int, str]]  # from SPSS/Stata metadata; empty for CSV/parquet
    path: Path
    synthetic: bool = False
    columns_read: list[str] = field(default_factory=list)


def _wanted_variables() -> list[str]:
    names = [v for a in ATTRIBUTES for v in a.variables]
    for q in QUESTIONS:
        names += [q.qid, q.qid + "P"]
    return names + [ID_VARIABLE, SYNTHETIC_MARKER]


def read_wvs(path: str | Path, labels: str | Path | None = None) -> WVSData:
    """Read the DVMap variables from a WVS file; raise :class:`WVSInputError` naming what is wrong.

    ``labels``: a JSON file ``{variable: {code: label}}`` adding value labels (a CSV has none). Without it, a
    ``<file>.labels.json`` beside the data file is used when present.
    """
    path = Path(path)
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
    try:
        frame, frame_labels = readers[suffix](path)
    except WVSInputError:
        raise
    except Exception as e:  # parser errors of four libraries: say which file, keep the cause
        raise WVSInputError(f"{path}: cannot read as {suffix[1:]} ({type(e).__name__}: {e})") from e
    if len(frame) == 0:
        raise WVSInputError(f"{path}: the table is empty (no respondents)")
    value_labels = frame_labels
    sidecar = Path(labels) if labels else path.with_name(path.name + ".labels.json")
    if labels or sidecar.exists():
        for var, mapping in read_labels(sidecar).items():
            value_labels.setdefault(var, {}).update(mapping)
    synthetic = SYNTHETIC_MARKER in frame.columns
    return WVSData(frame, value_labels, path, synthetic, list(frame.columns))


def read_labels(path: Path) -> dict[str, dict[int, str]]:
    import json

    try:
        raw = json.loads(Path(path).read_text())
        return {str(var).upper(): {int(code): str(label) for code, label in m.items()} for var, m in raw.items()}
    except FileNotFoundError:
        raise WVSInputError(f"{path}: labels file not found") from None
    except (ValueError, AttributeError, TypeError) as e:
        raise WVSInputError(f"{path}: not a labels JSON of the form {{variable: {{code: label}}}} ({e})") from None


def _select(available: list[str], path: Path) -> dict[str, str]:
    """canonical upper-case name -> the file's own spelling, for the variables we want that the file has."""
    by_upper = {c.strip().strip('"').upper(): c for c in available}
    chosen = {v: by_upper[v] for v in _wanted_variables() if v in by_upper}
    missing = []
    for a in ATTRIBUTES:
        if not any(v in chosen for v in a.variables):
            missing.append(f"{a.name} ({' or '.join(a.variables)})")
    for q in QUESTIONS:
        if q.split == "train" and q.qid not in chosen and q.qid + "P" not in chosen:
            missing.append(f"{q.qid} (or {q.qid}P)")
    if missing:
        raise WVSInputError(f"{path}: missing required WVS variable(s): {', '.join(missing)}")
    return chosen


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8-sig", "replace").rstrip("\r\n")
    if not header:
        raise WVSInputError(f"{path}: the file is empty")
    delimiter = max([",", ";", "\t"], key=header.count)
    names = [h.strip().strip('"') for h in header.split(delimiter)]
    chosen = _select(names, path)
    # Types are inferred (a stray text value must not abort the read: the checks below name it);
    # only the ISO3 country column is text by definition.
    types = {orig: pa.string() for canon, orig in chosen.items() if canon == "B_COUNTRY_ALPHA"}
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(include_columns=list(chosen.values()), column_types=types,
                                             null_values=["", " ", "NA", "NaN", "."], strings_can_be_null=True),
    )
    frame = table.to_pandas()
    return frame.rename(columns={v: k for k, v in chosen.items()}), {}


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict]:
    import pyarrow.parquet as pq

    chosen = _select(pq.read_schema(path).names, path)
    frame = pq.read_table(path, columns=list(chosen.values())).to_pandas()
    return frame.rename(columns={v: k for k, v in chosen.items()}), {}


def _read_readstat(path: Path, reader) -> tuple[pd.DataFrame, dict]:
    _, meta = reader(str(path), metadataonly=True)
    chosen = _select(list(meta.column_names), path)
    frame, meta = reader(str(path), usecols=list(chosen.values()), apply_value_formats=False)
    rename = {v: k for k, v in chosen.items()}
    labels = {}
    for var, mapping in (meta.variable_value_labels or {}).items():
        if var in rename:
            labels[rename[var]] = {int(k): str(v) for k, v in mapping.items() if _is_int(k)}
    return frame.rename(columns=rename), labels


def _read_spss(path: Path):
    import pyreadstat

    return _read_readstat(path, pyreadstat.read_sav)


def _read_stata(path: Path):
    import pyreadstat

    return _read_readstat(path, pyreadstat.read_dta)


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


def _country_names(data: WVSData) -> tuple[np.ndarray, dict]:
    f, path = data.frame, data.path
    if "B_COUNTRY" in f.columns:
        codes = _numeric(f, "B_COUNTRY", path)
        bad = ~np.isfinite(codes) | (codes <= 0) | (codes > 999) | (codes != np.round(codes))
        if bad.any():
            example = f["B_COUNTRY"].to_numpy()[bad][0]
            raise WVSInputError(f"{path}: column B_COUNTRY has {int(bad.sum())} value(s) that are not ISO 3166 "
                                f"numeric country codes, e.g. {example!r}")
        lookup = {c.iso_num: c.name for c in schema.COUNTRIES}
        names = pd.Series(codes.astype(np.int64)).map(lookup).to_numpy(dtype=object)
        other = pd.Series(codes[pd.isna(names)].astype(np.int64)).value_counts().to_dict()
    else:
        alpha = f["B_COUNTRY_ALPHA"].astype("string").str.strip().str.upper()
        if alpha.isna().any() or (alpha.str.len() != 3).any():
            example = f["B_COUNTRY_ALPHA"][alpha.isna() | (alpha.str.len() != 3)].iloc[0]
            raise WVSInputError(f"{path}: column B_COUNTRY_ALPHA has values that are not ISO3 codes, e.g. {example!r}")
        lookup = {c.iso3: c.name for c in schema.COUNTRIES}
        names = alpha.map(lookup).to_numpy(dtype=object)
        other = alpha[pd.isna(names)].value_counts().to_dict()
    return names, {str(k): int(v) for k, v in other.items()}


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


def _question_codes(q, data: WVSData, stats: dict) -> np.ndarray | None:
    """Option indices of question ``q`` (-1 missing), from ``q`` or its polarity-reversed ``qP`` column.

    Negative codes are WVS's own missing codes; any other code outside the question's scale (99, 2.5) is missing
    too, and counted in ``stats["values_out_of_range"][column]``."""
    frame = data.frame
    if q.qid in frame.columns:
        col = q.qid
        raw = _codes(data, col, stats)
        codes = raw
    elif q.qid + "P" in frame.columns:
        col = q.qid + "P"
        raw = _codes(data, col, stats)
        codes = np.where(raw >= 0, q.reversed_max - raw, raw)  # negative codes stay missing
    else:
        return None
    out = np.full(len(codes), -1, dtype=np.int8)
    ok = np.isfinite(raw) & (raw >= 0)
    if q.scale10:
        for i, (lo, hi, _) in enumerate(schema.SCALE10_BINS.edges):
            out[ok & (codes >= lo) & (codes < hi) & (codes == np.round(codes))] = i
    else:
        idx = codes - 1
        valid = ok & (idx >= 0) & (idx < q.k) & (idx == np.round(idx))
        out[valid] = idx[valid].astype(np.int8)
    _count_out_of_range(stats, col, int((ok & (out < 0)).sum()))
    return out


def build_respondents(data: WVSData, countries: tuple[str, ...] | None = None,
                      drop_duplicates: bool = False) -> Respondents:
    """Map codes to labels and option indices; drop respondents outside ``countries`` or without a required attribute.

    Duplicated respondents (see :func:`_duplicates`) are a :class:`WVSInputError` unless ``drop_duplicates`` (the
    first of each is kept, the count recorded). ``stats`` counts every value turned into something else:
    ``values_coerced`` (text mapped to codes through labels) and ``values_out_of_range`` (codes outside a scale),
    per column."""
    stats: dict[str, Any] = {"input": str(data.path), "respondents_read": int(len(data.frame)),
                             "values_coerced": {}, "values_out_of_range": {}}
    names, other = _country_names(data)
    stats["other_countries_skipped"] = other
    wanted = set(countries or (c.name for c in schema.COUNTRIES))
    in_scope = pd.Series(names).isin(wanted).to_numpy()
    unique = _check_duplicates(data, names, drop_duplicates, stats)
    keep = in_scope & unique
    if not keep.any():
        raise WVSInputError(f"{data.path}: none of the DVMap countries ({', '.join(sorted(wanted))}) is in the file")
    cols: dict[str, Any] = {"Country": pd.Categorical(names)}
    for attr in ATTRIBUTES[1:]:
        cols[attr.name] = _attribute_labels(attr, data, stats)
        keep &= cols[attr.name].codes >= 0
    questions, read_from = [], {}
    for q in QUESTIONS:
        codes = _question_codes(q, data, stats)
        if codes is not None:
            cols[q.qid] = codes
            questions.append(q.qid)
            read_from[q.qid] = q.qid if q.qid in data.frame.columns else q.qid + "P"
    stats["questions_missing"] = [q.qid for q in QUESTIONS if q.qid not in questions]
    frame = pd.DataFrame({k: v[keep] for k, v in cols.items()})
    stats["respondents_kept"] = int(len(frame))
    stats["respondents_dropped_missing_required"] = int((in_scope & unique).sum() - len(frame))
    direction = check_scale_direction(frame, data.path, read_from)
    stats["scale_direction_checked"] = direction["checked"]
    if direction["reversed_columns_without_anchor"]:
        stats["reversed_columns_without_anchor"] = direction["reversed_columns_without_anchor"]
        if not any(read_from.get(q, "").endswith("P") for q in direction["checked"]):
            log.warning("%s: reversed columns %s were turned back by the WVS convention, but no anchored reversed "
                        "column confirms that this file follows it", data.path,
                        ", ".join(direction["reversed_columns_without_anchor"]))
    return Respondents(frame, questions, stats)


def check_scale_direction(frame: pd.DataFrame, path: Path, columns: dict[str, str] | None = None,
                          min_answers: int = 30, min_pooled: int = 200) -> dict[str, list[str]]:
    """Refuse a reversed scale, for every item that has a direction anchor (:data:`schema.LEANS_TO_FIRST_OPTIONS`
    and Q1); ``columns`` maps each question to the column read (``Q2P`` for a polarity-reversed one). Returns the
    questions checked and the reversed columns that no anchor covers (their direction rests on the file's
    convention, which the anchored columns confirm)."""
    columns = columns or {}
    checked = []
    if "Q1" in frame.columns:
        for country, answers in frame.groupby("Country", observed=True)["Q1"]:
            a = answers[answers >= 0]
            if len(a) >= min_answers and a.mode().iloc[0] != 0:
                raise WVSInputError(
                    f"{path}: {columns.get('Q1', 'Q1')} (importance of family) in {country} has mode "
                    f"{schema.IMPORTANCE[int(a.mode().iloc[0])]!r}, not 'Very important': the scale looks reversed "
                    f"(a polarity-reversed Q1P column read as Q1, or recoded data)")
        checked.append("Q1")
    for qid in schema.LEANS_TO_FIRST_OPTIONS:
        if qid not in frame.columns:
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
