"""The question bank: which survey variables become DVMap questions, with their wording, options and code mapping.

A bank is a YAML file (the paper's 23 questions ship as ``dvmap_verl/data/question_bank.yaml``, the default)::

    name: my-bank                      # optional: recorded in stats.json
    questions:
      - id: Q57                        # Q_id written in the corpus; unique
        variable: Q57                  # column holding the codes (default: the id)
        reversed_variable: Q57P        # optional: polarity-reversed column, read when `variable` is absent ...
        reversed_sum: 3                # ... original code = reversed_sum - reversed code (required with it)
        text: "Generally speaking, would you say that most people can be trusted ...?"
        options: [Most people can be trusted, Need to be very careful]    # in scale order
        codes: identity                # how codes map to options (below)
        category: SOCIAL CAPITAL, TRUST & ORGANIZATIONAL MEMBERSHIP
        split: train                   # train (training questions) or cross_value (held out: the cross-value split)
        required: true                 # default; false: a file without the column is accepted (and listed)

``codes`` is ``identity`` (code 1 is the first option, 2 the second, ...), ``reversed`` (code K is the first
option, ..., code 1 the last) or a list with one item per option: a code, a list of codes, or an inclusive range
``"lo-hi"`` (a 1-10 scale binned: ``["1-3", "4-7", "8-10"]``). Codes are non-negative whole numbers: negative codes
are WVS's missing values (-1 don't know ... -5 missing) and are never options. At most :data:`MAX_OPTIONS` options.

Errors (:class:`BankError`) name the bank file and the entry: a duplicate id, an unknown key, options that the codes
do not match one to one, a code in two options. A bank entry whose column the data file lacks, or whose options
leave out codes the file holds, is refused when the file is read (:mod:`dvmap_verl.data.wvs`), naming the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from dvmap_verl.errors import InputError

#: The package's default bank: the paper's 16 training and 7 cross-value questions.
DEFAULT_BANK = Path(__file__).with_name("question_bank.yaml")
#: Options per question at most (the distributions table holds counts as an n x 8 matrix): bin longer scales.
MAX_OPTIONS = 8
#: The largest code a mapping may name (a lookup table of this size maps codes to options).
MAX_CODE = 100_000
SPLIT_ROLES = ("train", "cross_value")
_KEYS = {"id", "variable", "reversed_variable", "reversed_sum", "text", "options", "codes", "category", "split",
         "required", "note"}
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class BankError(InputError):
    """A question bank (or a bank entry read against a data file) is unusable; the message names the entry."""


@dataclass(frozen=True)
class Question:
    """One bank entry. ``codes``: (code, option index) pairs of the original (not reversed) column."""

    qid: str
    category: str
    text: str
    options: tuple[str, ...]  # ordinal order
    split: str = "train"  # "train" or "cross_value"
    scale10: bool = False  # options are bins of a numeric scale (several codes per option)
    reversed_max: int | None = None  # the reversed column holds (reversed_max - original code)
    variable: str = ""
    reversed_variable: str | None = None
    codes: tuple[tuple[int, int], ...] = ()
    required: bool = True
    _lut: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self):
        if not self.variable:
            object.__setattr__(self, "variable", self.qid)
        if not self.codes:  # identity
            object.__setattr__(self, "codes", tuple((i + 1, i) for i in range(len(self.options))))
        top = max(c for c, _ in self.codes)
        lut = np.full(top + 2, -1, dtype=np.int8)
        for c, i in self.codes:
            lut[c] = i
        object.__setattr__(self, "_lut", lut)

    @property
    def k(self) -> int:
        return len(self.options)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this entry can be read from, in order of preference."""
        return (self.variable,) + ((self.reversed_variable,) if self.reversed_variable else ())

    def option_for_code(self, code: float) -> int | None:
        """Option index of a (non-negative) original code, or None when no option holds it."""
        if not np.isfinite(code) or code < 0 or code != int(code) or code >= len(self._lut):
            return None
        i = int(self._lut[int(code)])
        return None if i < 0 else i

    def options_of(self, codes: np.ndarray) -> np.ndarray:
        """Option index (int8, -1 where no option holds the code) of every original code (float64, NaN missing)."""
        lut = self._lut
        whole = np.isfinite(codes) & (codes >= 0) & (codes < len(lut)) & (codes == np.round(codes))
        out = np.full(len(codes), -1, dtype=np.int8)
        out[whole] = lut[codes[whole].astype(np.int64)]
        return out

    @property
    def code_range(self) -> tuple[int, int]:
        mapped = [c for c, _ in self.codes]
        return min(mapped), max(mapped)


@dataclass(frozen=True)
class QuestionBank:
    """Questions in bank order (the corpus orders each profile's rows by it)."""

    questions: tuple[Question, ...]
    source: str  # the file it came from
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "by_id", {q.qid: q for q in self.questions})

    by_id: dict = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def train(self) -> tuple[str, ...]:
        return tuple(q.qid for q in self.questions if q.split == "train")

    @property
    def cross_value(self) -> tuple[str, ...]:
        return tuple(q.qid for q in self.questions if q.split == "cross_value")

    @property
    def order(self) -> dict[str, int]:
        return {q.qid: i for i, q in enumerate(self.questions)}

    def describe(self) -> dict[str, Any]:
        """What stats.json records about the bank."""
        return {"source": self.source, "name": self.name, "questions": len(self.questions),
                "train": list(self.train), "cross_value": list(self.cross_value)}


def _entry_codes(raw: Any, k: int, where: str) -> tuple[tuple[tuple[int, int], ...], bool]:
    """(code, option) pairs and whether an option holds several codes (a binned scale)."""
    if raw is None or raw == "identity":
        return tuple((i + 1, i) for i in range(k)), False
    if raw == "reversed":
        return tuple((k - i, i) for i in range(k)), False
    if not isinstance(raw, list) or len(raw) != k:
        raise BankError(f"{where}: codes must be identity, reversed or a list with one item per option ({k}), "
                        f"got {raw!r}")
    pairs: list[tuple[int, int]] = []
    for i, item in enumerate(raw):
        for code in _codes_of(item, where):
            pairs.append((code, i))
    seen: dict[int, int] = {}
    for code, i in pairs:
        if code in seen and seen[code] != i:
            raise BankError(f"{where}: code {code} is in two options ({seen[code] + 1} and {i + 1})")
        seen[code] = i
    return tuple(pairs), len(pairs) > k


def _codes_of(item: Any, where: str) -> list[int]:
    if isinstance(item, bool):
        raise BankError(f"{where}: {item!r} is not a code")
    if isinstance(item, int):
        codes = [item]
    elif isinstance(item, str) and _RANGE.match(item):
        lo, hi = map(int, _RANGE.match(item).groups())
        if hi < lo:
            raise BankError(f"{where}: range {item!r} runs backwards")
        codes = list(range(lo, hi + 1))
    elif isinstance(item, list) and item:
        codes = [c for x in item for c in _codes_of(x, where)]
    else:
        raise BankError(f"{where}: {item!r} is not a code, a list of codes or a range \"lo-hi\"")
    bad = [c for c in codes if not 0 <= c <= MAX_CODE]
    if bad:
        raise BankError(f"{where}: code {bad[0]} is outside 0..{MAX_CODE:,} (negative codes are WVS missing "
                        f"values, never options)")
    return codes


def _text(entry: dict, key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise BankError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def parse_entry(entry: Any, where: str) -> Question:
    """One bank entry (a YAML mapping) as a :class:`Question`; ``where`` names it in errors."""
    if not isinstance(entry, dict):
        raise BankError(f"{where}: an entry must be a mapping with id, text, options, ..., got {entry!r}")
    qid = _text(entry, "id", where)
    where = f"{where} ({qid})"
    unknown = sorted(set(map(str, entry)) - _KEYS)
    if unknown:
        raise BankError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    options = entry.get("options")
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o for o in options):
        raise BankError(f"{where}: options must be a list of at least 2 option texts, got {options!r}")
    if len(set(options)) != len(options) or len(options) > MAX_OPTIONS:
        raise BankError(f"{where}: options must be distinct and at most {MAX_OPTIONS} (bin a longer scale: "
                        f"codes: [\"1-3\", \"4-7\", \"8-10\"]), got {len(options)}: {options!r}")
    codes, binned = _entry_codes(entry.get("codes"), len(options), where)
    split = entry.get("split", "train")
    if split not in SPLIT_ROLES:
        raise BankError(f"{where}: split must be one of {', '.join(SPLIT_ROLES)}, got {split!r}")
    rev = entry.get("reversed_variable")
    rsum = entry.get("reversed_sum")
    if rev is not None and (not isinstance(rsum, int) or isinstance(rsum, bool)):
        raise BankError(f"{where}: reversed_variable {rev!r} needs reversed_sum (original = reversed_sum - code), "
                        f"got {rsum!r}")
    required = entry.get("required", True)
    if not isinstance(required, bool):
        raise BankError(f"{where}: required must be true or false, got {required!r}")
    return Question(qid.strip(), _text(entry, "category", where), _text(entry, "text", where), tuple(options),
                    split, binned, rsum if rev is not None else None,
                    _text(entry, "variable", where, qid).strip().upper(),
                    _text(entry, "reversed_variable", where).strip().upper() if rev is not None else None,
                    codes, required)


def parse_bank(raw: Any, source: str) -> QuestionBank:
    """A parsed YAML document (a mapping with ``questions``, or the list itself) as a :class:`QuestionBank`."""
    entries = raw.get("questions") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise BankError(f"{source}: a question bank is a list of entries under 'questions:' (see the README)")
    questions, first = [], {}
    for i, entry in enumerate(entries, 1):
        q = parse_entry(entry, f"{source}: entry {i}")
        if q.qid in first:
            raise BankError(f"{source}: entry {i} ({q.qid}): duplicate id, entry {first[q.qid]} has it too")
        first[q.qid] = i
        questions.append(q)
    name = raw.get("name", "") if isinstance(raw, dict) else ""
    return QuestionBank(tuple(questions), source, str(name or ""))


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load`` through libyaml when PyYAML has it (the same documents, ~10x faster on a 100-entry bank)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_bank(path: str | Path | None = None) -> QuestionBank:
    """Read and check a bank file (``None``: the paper's default). Raises :class:`BankError` naming the entry."""
    if path is None:
        return default_bank()
    import yaml

    path = Path(path)
    try:
        raw = _yaml_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BankError(f"{path}: question bank not found") from None
    except yaml.MarkedYAMLError as e:  # one line: the problem and where (PyYAML's own text spans several)
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise BankError(f"{path}: cannot read as a YAML question bank ({where}{e.problem or e.context})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BankError(f"{path}: cannot read as a YAML question bank ({' '.join(str(e).split())})") from None
    return parse_bank(raw, str(path))


@lru_cache(maxsize=1)
def default_bank() -> QuestionBank:
    import yaml

    return parse_bank(_yaml_load(DEFAULT_BANK.read_text(encoding="utf-8")), "default")


def entry_dict(q: Question) -> dict[str, Any]:
    """A :class:`Question` as a YAML entry (identity codes written as ``identity``)."""
    out: dict[str, Any] = {"id": q.qid}
    if q.variable != q.qid:
        out["variable"] = q.variable
    if q.reversed_variable:
        out["reversed_variable"], out["reversed_sum"] = q.reversed_variable, q.reversed_max
    out["text"], out["options"] = q.text, list(q.options)
    out["codes"] = "identity" if q.codes == tuple((i + 1, i) for i in range(q.k)) else _codes_list(q)
    out["category"], out["split"] = q.category, q.split
    if not q.required:
        out["required"] = False
    return out


def _codes_list(q: Question) -> list:
    per: list[list[int]] = [[] for _ in q.options]
    for c, i in q.codes:
        per[i].append(c)
    out: list = []
    for codes in per:
        codes = sorted(codes)
        if len(codes) == 1:
            out.append(codes[0])
        elif codes == list(range(codes[0], codes[-1] + 1)):
            out.append(f"{codes[0]}-{codes[-1]}")
        else:
            out.append(codes)
    return out


def dump_bank(questions: Iterable[Question], name: str = "", header: str = "") -> str:
    """YAML text of a bank (``header``: comment lines put first)."""
    import yaml

    body = yaml.safe_dump({"name": name, "questions": [entry_dict(q) for q in questions]}, sort_keys=False,
                          allow_unicode=True, width=120, default_flow_style=None)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body
