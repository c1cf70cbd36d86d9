"""Stated distributions: the parser shared by the ``rps`` reward and the ``verbalised`` readout, and the score.

The ``distribution`` template asks for one line per option inside the answer tags::

    <answer>
    Strongly agree: 0.10
    Agree: 0.35
    Disagree: 0.40
    Strongly disagree: 0.15
    </answer>

The parser is tolerant of what models write: ``=`` for ``:``, bullets, percentages (``35%``, or numbers that sum to
100), option numbers and the resolver's spelling variants for the labels (``2: 0.35``, ``agree: .35``), a JSON
object (``{"Agree": 0.35, ...}``), options left out (probability 0) and sums off by up to ``SUM_TOLERANCE``
(renormalised). It returns None, never raises, for anything else: no probability lines, a label that names no option
or an option twice, a negative or non-finite number, a sum too far from 1, or an answer over the size bounds.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, Sequence

from dvmap_verl.reward.answers import option_set

#: How far the stated probabilities may sum from 1 (or from 100 for percentages) before the answer is refused.
SUM_TOLERANCE = 0.1
MAX_ANSWER_CHARS = 4096
MAX_LINES = 64
_PERCENT_LOW, _PERCENT_HIGH = 100.0 * (1 - SUM_TOLERANCE), 100.0 * (1 + SUM_TOLERANCE)

_NUMBER_START = frozenset("0123456789+-.")
#: ``label: value[%]`` or ``label = value[%]`` on a line of its own (trailing ``,``/``;`` allowed); the label is the
#: text before the last ``:``/``=`` of the line.
_LINE = re.compile(r"([^\n:=]*)[:=][ \t]*([+-]?[0-9.][0-9.eE+-]*)[ \t]*(%?)[ \t,;]*(?=\n|$)")
_LABEL_STRIP = " \t-*\u2022\"'`"


def _number(text: str) -> tuple[float, bool] | None:
    text = text.strip().rstrip(",;").strip()
    pct = text.endswith("%")
    if pct:
        text = text[:-1].strip()
    if not text or not (text[0].isdigit() or text[0] in "+-."):
        return None
    try:
        return float(text), pct
    except ValueError:
        return None


def _json_pairs(text: str) -> list[tuple[str, float, str]] | None:
    """(label, value, "%" or "") from a JSON object, with or without its braces; None if it is not one."""
    if not text.startswith("{"):
        text = "{" + text.rstrip(",; ") + "}"
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
        out.append((str(label), parsed[0], "%" if parsed[1] else ""))
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
    """Probabilities in option order from a stated distribution, or None (see the module's rules)."""
    if not isinstance(answer, str) or not options or len(answer) > MAX_ANSWER_CHARS:
        return None
    if answer.count("\n") > MAX_LINES:
        return None
    options = tuple(options)
    text = answer.strip()
    if text.startswith("{") or (text.startswith('"') and '":' in text and "\n" not in text):
        pairs = _json_pairs(text)
    else:  # the documented format: one C-level scan, no intermediate list (this runs for every rollout)
        pairs = []
        for label, value, pct in _LINE.findall(text):
            try:
                pairs.append((label.strip(_LABEL_STRIP), float(value), pct))
            except ValueError:
                continue
    if not pairs or len(pairs) > len(options):
        return None
    labels = _labels(options)
    probs = [0.0] * len(options)
    seen = 0
    any_percent_sign = False
    for label, value, pct in pairs:
        if not 0.0 <= value < math.inf:  # negative, NaN or infinite
            return None
        index = labels.get(label)
        if index is None:
            index = labels.get(label.lower())
            if index is None:
                index = option_set(options).resolve(label)
                if index is None:
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
    total = sum(probs)
    if not any_percent_sign and _PERCENT_LOW <= total <= _PERCENT_HIGH:  # percentages without the sign
        total /= 100.0
        probs = [p / 100.0 for p in probs]
    if not 1.0 - SUM_TOLERANCE <= total <= 1.0 + SUM_TOLERANCE:
        return None
    return [p / total for p in probs]


def ranked_probability_score(p: Sequence[float], t: Sequence[float]) -> float:
    """sum_k (CDF_p(k) - CDF_t(k))^2 over ordered options (0 when p = t; at most K - 1)."""
    cp = ct = total = 0.0
    for a, b in zip(p, t):
        cp += a
        ct += b
        d = cp - ct
        total += d * d
    return total


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
