"""What every benchmark importer shares: reading Python-repr cells, splitting refusals off a target, reading
ordinal positions, collecting malformed rows, rendering prompts, and writing the items as a VeRL parquet.

An imported item is one (question, group) pair: the chat prompt, the answerable options, and the group's answer
distribution over them (``target``, summing to 1), the refusal share kept apart, the ordinal position of each
option (``nan`` for a non-ordinal option) and whether the item is ordinal at all. The parquet is what
``dvmap eval --data`` reads (``prompt``, ``reward_model``, ``extra_info``; see ``dvmap_verl/data/dataset.py``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from dvmap_verl.data.prompts import chat_messages, system_prompt
from dvmap_verl.errors import InputError

#: The evaluation pads every item's options to this width (``MAX_K`` of dvmap_verl/evaluation/distributional.py
#: and metrics.py); an item with more answerable options is set aside, counted and named in stats.json.
MAX_OPTIONS = 16
#: Labels read as a refusal or non-answer when a benchmark does not mark them itself (compared case-folded, with
#: curly apostrophes straightened). OpinionQA and SubPOP mark theirs (options after the ordinal ones).
REFUSAL_LABELS = frozenset(s.casefold() for s in (
    "Refused", "DK/Refused", "Don't know/Refused", "Don't know/ Refused", "Don't know", "Dont know",
    "Don´t know", "Missing; Unknown", "No answer", "Not asked", "Not applicable", "DK/Ref", "Refused/DK",
    "I don't know", "No answer/refused", "Don't know/No answer",
))
#: A label's qualifier in parentheses, e.g. "Freedonia (non-national sample)".
_QUALIFIER = re.compile(r"^(?P<name>.*?)\s*\((?P<qualifier>[^()]*)\)\s*$")


def is_refusal(label: str) -> bool:
    return str(label).replace("\u2019", "'").strip().casefold() in REFUSAL_LABELS


def split_qualifier(name: str) -> tuple[str, str]:
    """``"Freedonia (non-national sample)"`` -> ``("Freedonia", "non-national sample")``; no qualifier -> ``""``."""
    m = _QUALIFIER.match(str(name))
    return (m.group("name").strip(), m.group("qualifier").strip()) if m else (str(name).strip(), "")


def stable_id(prefix: str, text: str) -> str:
    """A short id that is the same for the same text in every run (benchmarks without question keys)."""
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


class BadRow(InputError):
    """One malformed input row: ``file``, ``row`` (1-based data row, the header excluded), ``column`` and why."""

    def __init__(self, file: str | Path, row: int | str, column: str, why: str):
        self.file, self.row, self.column, self.why = str(file), row, column, why
        super().__init__(f"{file}: row {row}, column {column!r}: {why}")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "column": self.column, "error": self.why}


@dataclass
class BadRows:
    """Malformed rows: raised at once (default), or counted and listed with ``skip`` (``--skip-bad-rows``)."""

    skip: bool = False
    rows: list[BadRow] = field(default_factory=list)

    def add(self, bad: BadRow) -> None:
        if not self.skip:
            raise bad
        self.rows.append(bad)


def literal(text: Any, file: str | Path, row: int | str, column: str, kinds: tuple[type, ...]) -> Any:
    """A Python-repr cell (``"['a', \"b's\"]"``, ``"{1.0: 'x'}"``, ``"defaultdict(<class 'list'>, {...})"``) read
    with :func:`ast.literal_eval` (never ``eval``); a ``defaultdict(...)`` wrapper is cut to its ``{...}`` first.
    A value already of one of ``kinds`` (a JSON-native list) passes through. Raises :class:`BadRow`."""
    if isinstance(text, kinds):
        return text
    if text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == "":
        raise BadRow(file, row, column, "empty cell")
    s = str(text).strip()
    if s.startswith("defaultdict("):
        m = re.search(r"\{.*\}", s, re.S)
        if not m:
            raise BadRow(file, row, column, f"a defaultdict repr without a {{...}} body: {s[:60]!r}")
        s = m.group(0)
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise BadRow(file, row, column, f"not a Python literal ({type(e).__name__}): {s[:60]!r}") from None
    if not isinstance(value, kinds):
        raise BadRow(file, row, column, f"expected {'/'.join(k.__name__ for k in kinds)}, got "
                                        f"{type(value).__name__}: {s[:60]!r}")
    return value


def numbers(values: Iterable[Any], file, row, column) -> list[float]:
    """Finite floats, or :class:`BadRow` naming the first that is not."""
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):  # float(True) is 1.0: a re-serialisation slip, not a share
            raise BadRow(file, row, column, f"a boolean, not a number: {v!r}")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise BadRow(file, row, column, f"not a number: {v!r}") from None
        if not math.isfinite(f):
            raise BadRow(file, row, column, f"not a finite number: {v!r}")
        out.append(f)
    return out


@dataclass
class Target:
    """A group's answer distribution over the answerable options, with what was split off and the raw scale."""

    options: list[str]
    target: list[float]        # sums to 1 over ``options``
    refusal_options: list[str]
    refusal_share: float       # refusal mass / all mass (nan when the source gives none)
    raw_sum: float             # the source's sum over every option (1, 100, a weight total, a count total...)
    scale: str                 # "fraction", "percent", "weight" or "count": what the raw numbers were


def make_target(options: Sequence[str], values: Sequence[float], refusal: Sequence[bool], file, row, column,
                scale: str = "auto") -> Target:
    """Split the refusal options off and renormalise the rest to sum to 1 (sums drift, e.g. 0.998).

    ``scale="auto"``: a sum within [0.9, 1.1] is read as fractions, within [90, 110] as percentages; anything else
    is an error (say which with ``scale``). Negative values, and no answerable mass, are errors."""
    if len(options) != len(values):
        raise BadRow(file, row, column, f"{len(values)} values for {len(options)} options")
    labels = [str(o).strip() for o in options]
    if "" in labels or len(set(labels)) < len(labels):
        raise BadRow(file, row, column, f"options must be distinct and non-empty: {list(options)}")
    if any(v < 0 for v in values):
        raise BadRow(file, row, column, f"a negative share: {list(values)}")
    raw = float(sum(values))
    if scale == "auto":
        scale = "fraction" if 0.9 <= raw <= 1.1 else "percent" if 90 <= raw <= 110 else ""
        if not scale:
            raise BadRow(file, row, column, f"shares sum to {raw:g}: neither fractions (about 1) nor percentages "
                                            f"(about 100)")
    keep = [i for i, r in enumerate(refusal) if not r]
    answered = float(sum(values[i] for i in keep))
    if not keep or answered <= 0:
        raise BadRow(file, row, column, "no answerable option carries any share")
    return Target(options=[str(options[i]) for i in keep], target=[values[i] / answered for i in keep],
                  refusal_options=[str(options[i]) for i, r in enumerate(refusal) if r],
                  refusal_share=(raw - answered) / raw if raw > 0 else float("nan"), raw_sum=raw, scale=scale)


def ordinal_info(ordinal: Sequence[float] | None, k: int) -> tuple[list[float], bool, str]:
    """(positions, is_ordinal, why not): positions per option, ``nan`` for a non-ordinal one (negative, as SubPOP
    marks them); an item is ordinal when at least two distinct positions remain. ``None``: positions 1..K
    (the options' order is the scale)."""
    if ordinal is None:
        return [float(i + 1) for i in range(k)], k >= 2, ""
    pos = [float(o) if o is not None and float(o) >= 0 else float("nan") for o in ordinal]
    distinct = {p for p in pos if not math.isnan(p)}
    if len(distinct) < 2:
        return pos, False, "degenerate ordinal (fewer than two distinct positions)" if distinct else \
            "no ordinal option"
    return pos, True, ""


# ---------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------

#: The system message of every imported prompt: the readouts (logprob, sampling) read the answer between
#: <answer> tags, as for the DVMap items.
SYSTEM = "answer_only"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def lettered(options: Sequence[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def answer_instruction() -> str:
    return "Answer with the text of one option inside <answer></answer> tags."


def persona_prompt(facts: Sequence[str], question: str, options: Sequence[str]) -> str:
    """The DVMap persona template cut to the attributes a benchmark has: the release's role-playing sentence with
    the known facts, its direct-answer instruction, and its question/options block."""
    who = " ".join(facts) if facts else "You are playing the role of a survey respondent."
    return (f"You are playing the role of a survey respondent. {who}\n"
            "Based on the character's personal information and the given value-based question, choose the answer "
            "that best reflects the character. **Only output the final answer inside the `<answer></answer>` tags, "
            "without any explanation or reasoning.**\n\n"
            f"**Question**: {question}\n**Options**: {', '.join(options)}")


def messages_json(user: str) -> list[dict[str, str]]:
    return chat_messages(user, system_prompt(SYSTEM))


# ---------------------------------------------------------------------------------------------------------------
# Items and their parquet
# ---------------------------------------------------------------------------------------------------------------


def whole_counts(target: Sequence[float], n: float) -> list[float]:
    """``target`` times ``n`` as whole answers summing to round(n) (largest remainders): the floors of the
    evaluation draw and halve whole answers. The exact distribution stays in ``target``."""
    total = max(int(round(n)), 1)
    raw = np.asarray(target, dtype=float) * total
    whole = np.floor(raw + 1e-9)
    short = total - int(whole.sum())
    if short > 0:
        whole[np.argsort(-(raw - whole), kind="stable")[:short]] += 1
    return [float(x) for x in whole]


def item_row(*, benchmark: str, split: str, q_id: str, question: str, category: str, t: Target, user: str,
             country: str, group_attribute: str, group: str, ordinal: Sequence[float] | None, n: float,
             prompt_format: str, source: str, input_file: str | Path, input_row: int | str,
             scale: tuple[float, float] | None = None, render_args: dict[str, Any] | None = None,
             **more: Any) -> dict[str, Any]:
    """One item as a dict of ``extra_info`` fields (plus ``prompt``): the truth (``answer_index``) is the target's
    mode; ``counts`` is the target as ``n`` whole answers (``n``: the benchmark's draw count, the sampling
    floor's; :func:`whole_counts`). ``render_args``: what the importer's ``render`` needs besides the options to
    build ``user`` again with the options in another order (stored as JSON)."""
    pos, is_ord, why = ordinal_info(ordinal, len(t.options))
    if len(pos) != len(t.options):
        raise BadRow(input_file, input_row, "ordinal", f"{len(pos)} ordinal positions for {len(t.options)} "
                                                       f"answerable options {t.options}")
    truth = int(np.argmax(t.target))
    known = [p for p in pos if not math.isnan(p)]
    lo, hi = scale if scale is not None else ((min(known), max(known)) if known else (float("nan"),) * 2)
    return {
        "prompt": messages_json(user), "benchmark": benchmark, "split": split, "q_id": q_id, "question": question,
        "category": category, "options": list(t.options), "answer": t.options[truth], "answer_index": truth,
        "country": country, "group_attribute": group_attribute, "group": group,
        "profile_id": f"{group_attribute}={group}",  # with split and q_id, what dvmap compare pairs runs on
        "target": [float(x) for x in t.target], "counts": whole_counts(t.target, n), "n": float(n),
        "refusal_options": list(t.refusal_options), "refusal_share": float(t.refusal_share),
        "raw_sum": float(t.raw_sum), "raw_scale": t.scale, "ordinal": pos, "is_ordinal": bool(is_ord),
        "not_ordinal_why": why, "scale_min": float(lo), "scale_max": float(hi), "prompt_format": prompt_format,
        "source": source, "input_file": str(input_file), "input_row": str(input_row),
        "render_args": json.dumps(render_args or {}, sort_keys=True), **more,
    }


def verl_table(rows: list[dict[str, Any]]):
    """The items as a VeRL Arrow table (``data_source``, ``prompt``, ``ability``, ``reward_model``,
    ``extra_info``), what ``dvmap eval --data`` reads."""
    import pyarrow as pa

    from dvmap_verl.data.dataset import ABILITY, VERL_COLUMNS

    extra = []
    for i, r in enumerate(rows):
        e = {k: v for k, v in r.items() if k != "prompt"}
        e["index"] = i
        extra.append(e)
    return pa.Table.from_arrays([
        pa.array([f"{r['benchmark']}/{r['split']}" for r in rows], pa.string()),
        pa.array([r["prompt"] for r in rows]),
        pa.array([ABILITY] * len(rows), pa.string()),
        pa.array([{"style": "rule", "ground_truth": r["answer"]} for r in rows]),
        pa.array(extra),
    ], names=list(VERL_COLUMNS))


def json_ready(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, allow_nan=True))
