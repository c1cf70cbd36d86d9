"""One bounded reader for every JSON and JSONL file the package reads back (predictions, pair results, verl's rollout
dumps, ``run.json``, ``stats.json``), and the one way its JSONL is written.

The reader (:func:`read_jsonl`) splits on ``b"\\n"`` only and every writer writes JSON with ``ensure_ascii=True``
(:func:`dumps_line`), so a completion holding U+2028, U+2029 or U+0085 is one line both ways. A line is set aside,
counted and named (never fatal, never taken as data) when it is cut short (no final newline), longer than
:data:`MAX_LINE_BYTES`, nested deeper than :data:`MAX_DEPTH`, holds an integer of more than :data:`MAX_INT_DIGITS`
digits or a ``NaN``/``Infinity`` constant, is not JSON, or fails its record schema (``validate``). It sits at the
bottom of the package (beside :mod:`dvmap_verl.io`) so that evaluation and training read alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np

from dvmap_verl.errors import InputError, MissingInputError

MAX_LINE_BYTES = 16 << 20  # a record (one completion) is kilobytes; 16 MiB is no model's reply
MAX_DEPTH = 32  # records are at most 3 deep (a list of probabilities in an object)
MAX_INT_DIGITS = 30  # item and sample numbers, token counts: far below 10**30


class RunFileError(InputError):
    """A run folder's ``run.json``/``stats.json`` that cannot be read as the JSON object it must be."""


# ---------------------------------------------------------------------------------------------------------------
# Reading JSON back
# ---------------------------------------------------------------------------------------------------------------


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def nesting_depth(line: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, strings ignored; linear, no recursion."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:  # the usual case costs two counts
        return line.count(b"[") + line.count(b"{")
    arr = np.frombuffer(_STRING.sub(b"", line), dtype=np.uint8)
    step = (arr == ord("[")).astype(np.int64) + (arr == ord("{")) - (arr == ord("]")) - (arr == ord("}"))
    return int(np.cumsum(step).max()) if len(step) else 0


def loads_bounded(line: bytes | str) -> Any:
    """``json.loads`` with bounded nesting and integers and no ``NaN``/``Infinity``; raises ValueError saying what
    is wrong (never RecursionError or the interpreter's digit-limit message)."""
    raw = line.encode("utf-8") if isinstance(line, str) else line
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise ValueError(f"nested {depth:,} deep (at most {MAX_DEPTH})")
    try:
        return json.loads(raw, parse_int=_bounded_int, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:  # belt and braces: the depth check comes first
        raise ValueError("nested too deep") from None


def dumps_line(record: dict[str, Any]) -> str:
    """One JSONL line as every writer here writes it: ASCII only (U+2028/U+2029/U+0085 escaped), no NaN."""
    return json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n"


def load_json_object(path: str | Path, required: bool = True) -> dict[str, Any] | None:
    """A JSON object file (``run.json``, ``stats.json``) read and checked; raises :class:`RunFileError` naming the
    file and what is wrong. A missing file is ``None`` when not ``required``."""
    path = Path(path)
    if not path.exists():
        if required:
            raise MissingInputError(f"{path}: no such file")
        return None
    try:
        obj = loads_bounded(path.read_bytes())
    except ValueError as e:
        raise RunFileError(f"{path}: not valid JSON ({e}); restore it or start another folder") from None
    if not isinstance(obj, dict):
        raise RunFileError(f"{path}: holds a JSON {type(obj).__name__}, not the object dvmap writes; restore it or "
                           f"start another folder")
    if "config" in obj and not isinstance(obj["config"], dict):
        raise RunFileError(f"{path}: its \"config\" is a JSON {type(obj['config']).__name__}, not an object")
    return obj


@dataclass
class JsonlScan:
    """The valid records of a JSONL file, and what was set aside (1-based line numbers, with the reason)."""

    records: list[dict] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    bad: dict[int, str] = field(default_factory=dict)
    duplicates: dict[int, str] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return len(self.bad) + len(self.duplicates)

    def describe(self, path: Path, show: int = 3) -> str:
        """``PATH: skipped N unreadable line(s) (line a, b); M repeated ...; e.g. line a: why`` or ``""``."""
        parts = []
        if self.bad:
            parts.append(f"{len(self.bad)} unreadable line(s) ({line_list(list(self.bad))})")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} repeated line(s) ({line_list(list(self.duplicates))})")
        if not parts:
            return ""
        why = "; ".join(f"line {n}: {r}" for n, r in list(self.bad.items())[:show])
        return f"{path}: skipped " + " and ".join(parts) + (f" [{why}]" if why else "")


def line_list(lines: list[int], show: int = 5) -> str:
    head = ", ".join(map(str, lines[:show]))
    return f"line {head}" + (f", ... {len(lines) - show} more" if len(lines) > show else "")


Validator = Callable[[Any], "str | None"]


def read_jsonl(path: str | Path, validate: Validator | None = None,
               key: Callable[[dict], Hashable] | None = None, last_line_whole: bool = False) -> JsonlScan:
    """Every line of ``path`` (split on ``b"\\n"`` only) parsed by :func:`loads_bounded` and checked by
    ``validate`` (returns None or why the record is invalid); with ``key``, a record repeating an earlier one's key
    is set aside as a duplicate. A missing file is an empty scan. A last line without a newline is a torn write
    (set aside) unless ``last_line_whole`` (a table written by hand, not appended by dvmap)."""
    scan = JsonlScan()
    path = Path(path)
    if not path.exists():
        return scan
    seen: dict[Hashable, int] = {}
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            why = _line_problem(line if not last_line_whole or line.endswith(b"\n") else line + b"\n")
            rec = None
            if why is None:
                try:
                    rec = loads_bounded(line)
                except ValueError as e:
                    why = str(e)
            if why is None:
                why = "not a JSON object" if not isinstance(rec, dict) else (validate(rec) if validate else None)
            if why is not None:
                scan.bad[lineno] = why
                continue
            if key is not None:
                k = key(rec)
                if k in seen:
                    scan.duplicates[lineno] = f"repeats line {seen[k]}"
                    continue
                seen[k] = lineno
            scan.records.append(rec)
            scan.raw.append(line)
    return scan


def _line_problem(line: bytes) -> str | None:
    if not line.endswith(b"\n"):
        return "cut short (no newline at the end: a torn write)"
    if len(line) > MAX_LINE_BYTES:
        return f"{len(line):,} bytes long (at most {MAX_LINE_BYTES:,})"
    return None
