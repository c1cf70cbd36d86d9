"""Stated distributions: the parser shared by the ``rps`` reward and the ``verbalised`` readout, and the score.

The ``distribution`` template asks for one line per option inside the answer tags::

    <answer>
    Strongly agree: 0.10
    Agree: 0.35
    Disagree: 0.40
    Strongly disagree: 0.15
    </answer>

The parser reads the shapes models write (README, "Stated distributions"): one ``label: value`` entry per line or
several on one line separated by ``,`` or ``;``; ``=`` for ``:``; a label and a number without a separator
(``Agree 35%``); bullets, numbered lines and bold labels; trailing dots; CRLF line ends; a markdown table (with or
without a header row); a JSON object, bare or in a one-line or multi-line code fence; percentages (``35%``, or
numbers that sum to 100); option numbers and the resolver's spellings for the labels; options left out
(probability 0) and sums off by up to ``SUM_TOLERANCE`` (renormalised); a checksum entry labelled exactly ``Total``
or ``Sum`` (any case, markdown allowed: ``Total: 1.0``, ``Sum = 100%``), which is skipped when it equals the
entries' sum within ``SUM_TOLERANCE``. It returns None, never raises, for anything ambiguous: an explicit label
(``label: value``) that names no option, an option twice, a negative or non-finite number, a sum too far from 1, a
checksum that is not the sum, no entry at all, or an answer over the size bounds.

Linear time: the answer is split once by ``str`` methods and each entry read by slicing; no regular expression that
could backtrack runs over the answer.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Sequence

from dvmap_verl import stats
from dvmap_verl.reward.answers import option_set
from dvmap_verl.reward.options import normalize_text

#: Labels of a line that states the sum (``Total: 1.0``, ``**Sum** = 100%``): a checksum, not an option.
CHECKSUM_LABELS = frozenset({"total", "sum"})
#: How far the stated probabilities may sum from 1 (or from 100 for percentages) before the answer is refused.
SUM_TOLERANCE = 0.1
MAX_ANSWER_CHARS = 4096
MAX_LINES = 64
#: Entries (and prose segments) read from one answer at most: lines split on ``,``/``;`` give several per line.
MAX_ENTRIES = 64
_PERCENT_LOW, _PERCENT_HIGH = 100.0 * (1 - SUM_TOLERANCE), 100.0 * (1 + SUM_TOLERANCE)

_LABEL_STRIP = " \t-*+\u2022\"'`_#>|"
_VALUE_STRIP = " \t*_`\"'|"
_VALUE_TAIL = " \t.,;*_`\"')|"


def _number(text: str) -> tuple[float, bool] | None:
    """(value, whether it had a % sign) of ``0.35``, ``.35``, ``35%``, ``35 %``, ``0.35.``; None otherwise."""
    text = text.strip(_VALUE_STRIP).rstrip(_VALUE_TAIL)
    pct = text.endswith("%")
    if pct:
        text = text[:-1].rstrip()
    if not text or not (text[0].isdigit() or text[0] in "+-."):
        return None
    if not text.isascii() or "_" in text:  # float() accepts "1_0" and non-ASCII digits: neither is a probability
        return None
    try:
        return float(text), pct
    except ValueError:
        return None


def _json_pairs(text: str) -> list[tuple[str, float, bool, bool]] | None:
    """(label, value, percent, explicit) from a JSON object; None if it is not one of numbers."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    out = []
    for label, value in obj.items():
        parsed = _number(value) if isinstance(value, str) else None
        if parsed is None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            parsed = (float(value), False)
        out.append((str(label), parsed[0], parsed[1], True))
    return out


def _unfence(text: str) -> str:
    """The inside of the first markdown code fence (```json ... ```), on one line or several; else the text."""
    start = text.find("```")
    if start < 0:
        return text
    end = text.find("```", start + 3)
    inner = text[start + 3:end if end >= 0 else len(text)]
    if inner[:4].lower() == "json":
        inner = inner[4:]
    return inner.strip()


def _entry(segment: str) -> tuple[str, float, bool, bool] | None:
    """(label, value, percent, explicit) of ``label: value``, ``label = value`` or ``label value``; None when the
    segment holds no number after its label. ``explicit``: a ``:``/``=`` separated them."""
    cut = segment.rfind(":")
    eq = segment.rfind("=")
    if eq > cut:
        cut = eq
    if cut >= 0:
        label, value, explicit = segment[:cut], segment[cut + 1:], True
        try:  # the documented shape, "Agree: 0.35": one C call
            number = float(value)
        except ValueError:
            pass
        else:  # "nan" and "inf" are kept, so that the entry (or checksum) holding them refuses the answer
            return label.strip(_LABEL_STRIP), number, False, True
    else:
        parts = segment.rsplit(None, 1)
        if len(parts) != 2:
            return None
        (label, value), explicit = parts, False
    parsed = _number(value)
    if parsed is None:
        return None
    return label.strip(_LABEL_STRIP), parsed[0], parsed[1], explicit


def _table_row(line: str) -> tuple[str, float, bool, bool] | None:
    """A markdown table row ``| label | value |``: the first cell and the first cell after it holding a number
    (a header row or the ``|---|`` rule holds none)."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    for cell in cells[1:]:
        parsed = _number(cell)
        if parsed is not None:
            return cells[0].strip(_LABEL_STRIP), parsed[0], parsed[1], True
    return None


def _pairs(text: str) -> list[tuple[str, float, bool, bool]] | None:
    """Every entry of the answer, in order; None when there are more than :data:`MAX_ENTRIES`."""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        if "|" in line:
            entry = _table_row(line)
            if entry is not None:
                out.append(entry)
            continue
        segments = line.replace(";", ",").split(",") if ("," in line or ";" in line) else (line,)
        if len(out) + len(segments) > MAX_ENTRIES:
            return None
        for segment in segments:
            entry = _entry(segment)
            if entry is not None:
                out.append(entry)
    return out


@functools.lru_cache(maxsize=4096)
def _labels(options: tuple[str, ...]) -> dict[str, int]:
    """Exact spellings of each option (as written, lower-case, its 1-based number): the fast path before the
    resolver's normalisation."""
    out: dict[str, int] = {}
    for i, o in enumerate(options):
        out.setdefault(o, i)
        out.setdefault(o.lower(), i)
        out.setdefault(str(i + 1), i)
    return out


def parse_distribution(answer: str | None, options: Sequence[str]) -> list[float] | None:
    """Probabilities in option order from a stated distribution, or None (see the module's rules).

    >>> parse_distribution("Low: 20%, Medium: 30%, High: 50%.", ("Low", "Medium", "High"))
    [0.2, 0.3, 0.5]
    """
    if not isinstance(answer, str) or not options or len(answer) > MAX_ANSWER_CHARS:
        return None
    if answer.count("\n") > MAX_LINES:
        return None
    options = tuple(options)
    text = normalize_text(answer).replace("\r\n", "\n").replace("\r", "\n").strip()
    if "```" in text:
        text = _unfence(text)
    if text.startswith("{"):
        pairs = _json_pairs(text)
    else:
        pairs = _pairs(text)
    if not pairs:
        return None
    return _probabilities(pairs, options)


def _probabilities(pairs: list[tuple[str, float, bool, bool]], options: tuple[str, ...]) -> list[float] | None:
    labels = _labels(options)
    probs = [0.0] * len(options)
    seen = 0
    any_percent_sign = False
    checksums: list[tuple[float, bool]] = []
    for label, value, pct, explicit in pairs:
        index = labels.get(label)
        if index is None:
            index = labels.get(label.lower())
            if index is None and label.lower() in CHECKSUM_LABELS:  # "Total: 1.0": the model's own sum
                checksums.append((value, pct))
                continue
            if index is None:
                index = option_set(options).resolve(label)
                if index is None:
                    if explicit:  # "Maybe: 0.3" names no option: ambiguous, refused
                        return None
                    continue  # "she is 35": prose, not an entry
        if not 0.0 <= value < math.inf:  # negative, NaN or infinite
            return None
        bit = 1 << index
        if seen & bit:
            return None
        seen |= bit
        if pct:
            probs[index] = value / 100.0
            any_percent_sign = True
        else:
            probs[index] = value
    if not seen:
        return None
    total = sum(probs)
    if not any_percent_sign and _PERCENT_LOW <= total <= _PERCENT_HIGH:  # percentages without the sign
        total /= 100.0
        probs = [p / 100.0 for p in probs]
    if not 1.0 - SUM_TOLERANCE <= total <= 1.0 + SUM_TOLERANCE:
        return None
    if not all(_checksum_holds(value, pct, total) for value, pct in checksums):
        return None
    return [p / total for p in probs]


def _checksum_holds(value: float, pct: bool, total: float) -> bool:
    """Whether a stated total (``1.0``, ``100%`` or ``100``) is the entries' sum ``total`` (as a probability)
    within :data:`SUM_TOLERANCE`."""
    if not 0.0 <= value < math.inf:
        return False
    return abs((value / 100.0 if pct else value) - total) <= SUM_TOLERANCE \
        or (not pct and abs(value / 100.0 - total) <= SUM_TOLERANCE)


def ranked_probability_score(p: Sequence[float], t: Sequence[float]) -> float:
    """sum_k (CDF_p(k) - CDF_t(k))^2 over ordered options (0 when p = t; at most K - 1): ``stats.rps``, raw scale."""
    return stats.rps(list(p), list(t), scale="raw")


def target_distribution(extra: Any, truth: int, k: int) -> tuple[list[float], str]:
    """The row's target: ``extra_info.target`` (probabilities), else its ``counts``, else the point mass on the
    truth. Returns (target, where it came from); a malformed field falls through to the next source."""
    if isinstance(extra, dict) or hasattr(extra, "get"):
        for key in ("target", "counts"):
            raw = extra.get(key)
            if raw is None or isinstance(raw, (str, bytes)):
                continue
            try:
                values = list(map(float, raw))
            except (TypeError, ValueError):
                continue
            if len(values) != k or not values:
                continue
            total = sum(values)
            # A finite positive sum of values none of which is negative: every value is finite and >= 0.
            if math.isfinite(total) and total > 0 and min(values) >= 0:
                return (values if abs(total - 1.0) < 1e-12 else [v / total for v in values]), key
    return [1.0 if i == truth else 0.0 for i in range(k)], "point"


def format_distribution(options: Sequence[str], probs: Sequence[float]) -> str:
    """The documented answer format, e.g. for worked examples and tests."""
    return "\n".join(f"{o}: {p:.2f}" for o, p in zip(options, probs))
