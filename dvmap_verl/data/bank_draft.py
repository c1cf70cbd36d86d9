"""Draft question-bank entries from an SPSS (.sav) or Stata (.dta) file's own metadata, for a person to review.

The variable label becomes the question text and the value labels the options, in code order. WVS's missing-value
codes (negative: -1 don't know ... -5 missing) are left out. A 1-10 scale (more than :data:`bank.MAX_OPTIONS` codes,
all within 1..10) is binned Low (1-3) / Medium (4-7) / High (8-10), as the paper bins Q49, Q50 and Q112. Variable
labels are short codebook titles, not the questionnaire's wording: replace them before training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dvmap_verl.data.bank import MAX_OPTIONS, BankError, Question
from dvmap_verl.errors import InputError

DRAFT_CATEGORY = "UNREVIEWED"
SCALE10 = (("Low", (1, 3)), ("Medium", (4, 7)), ("High", (8, 10)))


def _read_meta(path: Path):
    import pyreadstat

    suffix = path.suffix.lower()
    readers = {".sav": pyreadstat.read_sav, ".zsav": pyreadstat.read_sav, ".dta": pyreadstat.read_dta}
    if suffix not in readers:
        raise InputError(f"{path}: question-bank drafts need the file's labels: give the SPSS (.sav) or Stata (.dta) "
                         f"file, not {suffix or 'a file without a suffix'}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        _, meta = readers[suffix](str(path), metadataonly=True)
    except Exception as e:  # the reader's own parse errors: name the file, keep the cause
        raise InputError(f"{path}: cannot read as {suffix[1:]} ({type(e).__name__}: {e})") from e
    return readers[suffix], meta


def draft_entries(path: str | Path, variables: list[str], split: str = "train",
                  category: str = DRAFT_CATEGORY) -> list[Question]:
    """One entry per variable (case-insensitive), from the file's labels and the codes it holds. Raises
    :class:`InputError` naming an absent variable, or one with more answer codes than a bank entry holds."""
    path = Path(path)
    reader, meta = _read_meta(path)
    by_upper = {c.upper(): c for c in meta.column_names}
    absent = [v for v in variables if v.upper() not in by_upper]
    if absent:
        raise InputError(f"{path}: no variable(s) {', '.join(absent)} in the file")
    cols = [by_upper[v.upper()] for v in variables]
    frame, _ = reader(str(path), usecols=cols, apply_value_formats=False)
    titles = meta.column_names_to_labels or {}
    all_labels = meta.variable_value_labels or {}
    out = []
    for col in cols:
        labels = {int(float(c)): str(t).strip() for c, t in all_labels.get(col, {}).items() if float(c) >= 0
                  and float(c) == int(float(c))}
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(values) & (values >= 0) & (values == np.round(values))
        fraction = np.isfinite(values) & (values >= 0) & ~whole
        if fraction.any():  # a weight or a score, not answer codes
            shown = ", ".join(f"{v:g}" for v in np.unique(values[fraction])[:3])
            raise BankError(f"{path}: {col} holds values that are not integer codes (e.g. {shown}): a continuous "
                            f"variable, not a question with options")
        present = {int(v) for v in np.unique(values[whole])}
        out.append(_entry(path, col, titles.get(col) or col, labels, sorted(present | set(labels)), split, category))
    return out


def _entry(path: Path, col: str, title: str, labels: dict[int, str], codes: list[int], split: str,
           category: str) -> Question:
    qid = col.upper()
    if not codes:
        raise InputError(f"{path}: {col} has no answer codes (no non-negative value nor value label)")
    if len(codes) > MAX_OPTIONS:
        if min(codes) < 1 or max(codes) > 10:
            raise BankError(f"{path}: {col} has {len(codes)} answer codes ({codes[0]}..{codes[-1]}); a bank entry "
                            f"holds at most {MAX_OPTIONS} options: write its codes as bins by hand")
        pairs = tuple((c, i) for i, (_, (lo, hi)) in enumerate(SCALE10) for c in range(lo, hi + 1))
        return Question(qid, category, title, tuple(n for n, _ in SCALE10), split, True, None, qid, None, pairs)
    options, seen = [], set()
    for c in codes:
        text = labels.get(c) or f"code {c}"
        if text in seen:  # two codes with one label: keep them apart
            text = f"{text} ({c})"
        seen.add(text)
        options.append(text)
    if len(options) < 2:
        raise BankError(f"{path}: {col} holds one answer code only ({codes[0]}): not a question with options")
    return Question(qid, category, title, tuple(options), split, False, None, qid, None,
                    tuple((c, i) for i, c in enumerate(codes)))
