"""One run-folder protocol for ``dvmap eval``, ``eval-pairs`` and ``import-run``, and one reader for every JSONL the
package reads back (predictions, pair results, verl's rollout dumps).

The reader (:func:`read_jsonl`) splits on ``b"\\n"`` only and every writer here writes JSON with
``ensure_ascii=True``, so a completion holding U+2028, U+2029 or U+0085 is one line both ways. A line is set aside,
counted and named (never fatal, never taken as data) when it is cut short (no final newline), longer than
:data:`MAX_LINE_BYTES`, nested deeper than :data:`MAX_DEPTH`, holds an integer of more than :data:`MAX_INT_DIGITS`
digits or a ``NaN``/``Infinity`` constant, is not JSON, or fails its record schema (``validate``).

A :class:`RunFolder` holds one run: an ``flock`` on ``.lock`` (a second process is refused at once), ``run.json``
(settings and a data fingerprint; a resume with other settings or other data is refused before anything is
written), the results JSONL (repaired before every append: invalid lines move to the rejected-lines file) and the
rejected-lines file itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import numpy as np

from dvmap_verl.io import atomic_path

RUN, LOCK = "run.json", ".lock"
MAX_LINE_BYTES = 16 << 20  # a record (one completion) is kilobytes; 16 MiB is no model's reply
MAX_DEPTH = 32  # records are at most 3 deep (a list of probabilities in an object)
MAX_INT_DIGITS = 30  # item and sample numbers, token counts: far below 10**30
#: Unparsed answer marker in ``pred``.
UNPARSED = -1
#: Tolerance of ``sum(probs) == 1`` (writers round each probability to 8 decimals).
PROBS_TOLERANCE = 1e-4
#: What the reply of a record may be (the replies helper's ``reply`` field).
REPLY_KINDS = ("text", "empty", "tool_call", "reasoning_only")


class RunSettingsError(ValueError):
    pass


class RunLockedError(RuntimeError):
    pass


class RunFileError(ValueError):
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
            raise FileNotFoundError(f"{path}: no such file")
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


# ---------------------------------------------------------------------------------------------------------------
# Record schemas
# ---------------------------------------------------------------------------------------------------------------


def _int(v: Any) -> bool:
    return type(v) is int  # bool is not an item number


def run_samples(run: dict | None) -> int | None:
    """Samples per item a run folder's ``run.json`` asked for (``config.samples``), or None when it names no
    positive integer (a baselines-only run records 0; an old or hand-made folder may record nothing)."""
    samples = ((run or {}).get("config") or {}).get("samples")
    return samples if _int(samples) and samples > 0 else None


def _finite(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def prediction_problem(rec: dict, n_options: list[int] | None = None, n_items: int | None = None,
                       n_samples: int | None = None) -> str | None:
    """Why a prediction record is invalid, or None. ``n_options[item]``: the item's K (``pred`` must lie in
    [0, K) or be -1; ``probs`` must hold K finite, non-negative values summing to 1). ``n_samples``: the run's
    samples per item (``sample`` must lie in [0, n_samples)); None or 0 (a baselines-only run) leaves it unbounded."""
    item, sample, pred = rec.get("item"), rec.get("sample"), rec.get("pred")
    if not (_int(item) and _int(sample) and _int(pred)):
        return "item, sample and pred must be integers"
    n = len(n_options) if n_options is not None else n_items
    if item < 0 or (n is not None and item >= n):
        return f"item {item} out of range" + (f" (items 0-{n - 1})" if n else " (items are numbered from 0)")
    if sample < 0:
        return f"sample {sample} out of range (samples are numbered from 0)"
    if not isinstance(rec.get("completion"), str):
        return "completion must be a string"
    k = n_options[item] if n_options is not None else None
    if pred < UNPARSED or (k is not None and pred >= k):
        return f"pred {pred} outside the item's options [0, {k})" if k is not None else f"pred {pred} below -1"
    if "answer" in rec and rec["answer"] is not None and not isinstance(rec["answer"], str):
        return "answer must be a string or null"
    for name in ("finish_reason", "reasoning"):
        if rec.get(name) is not None and not isinstance(rec[name], str):
            return f"{name} must be a string or null"
    if "reply" in rec and rec["reply"] not in REPLY_KINDS:
        return f"reply must be one of {REPLY_KINDS}"
    if "dropped_parts" in rec and not (_int(rec["dropped_parts"]) and rec["dropped_parts"] >= 0):
        return "dropped_parts must be a non-negative integer"
    if rec.get("probs") is not None and (why := probs_problem(rec["probs"], k)):
        return why
    if n_samples and sample >= n_samples:
        return f"sample {sample} out of range (the run asked {n_samples} sample(s) per item: 0-{n_samples - 1})"
    return None


def probs_problem(probs: Any, k: int | None) -> str | None:
    if not isinstance(probs, list) or not all(_finite(p) for p in probs):
        return "probs must be a list of finite numbers"
    if k is not None and len(probs) != k:
        return f"probs holds {len(probs)} values for {k} options"
    if any(p < 0 for p in probs):
        return "probs holds a negative value"
    if abs(sum(probs) - 1) > PROBS_TOLERANCE:
        return f"probs sums to {sum(probs):.6g}, not 1"
    return None


def pair_result_problem(rec: dict, n_pairs: int | None = None) -> str | None:
    """Why an ``eval-pairs`` result record is invalid, or None."""
    readout, pair, order = rec.get("readout"), rec.get("pair"), rec.get("order", 0)
    if readout not in ("likelihood", "judge"):
        return "readout must be likelihood or judge"
    if not (_int(pair) and pair >= 0 and (n_pairs is None or pair < n_pairs)):
        return f"pair {pair!r} out of range"
    if not (_int(order) and order in (0, 1)):
        return "order must be 0 or 1"
    if not (_finite(rec.get("score")) and 0 <= rec["score"] <= 1):
        return "score must be a number in [0, 1]"
    if readout == "likelihood" and not (_finite(rec.get("chosen")) and _finite(rec.get("rejected"))):
        return "chosen and rejected must be finite log-probabilities"
    if readout == "judge" and (not isinstance(rec.get("completion"), str) or rec.get("pick") not in ("A", "B", None)):
        return "a judge record needs a completion string and a pick of A, B or null"
    return None


def pair_result_key(rec: dict) -> tuple:
    return rec["readout"], rec["pair"], rec.get("order", 0)


# ---------------------------------------------------------------------------------------------------------------
# The run folder
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's lock: a second process on the same folder is refused at once. The lock is an
    ``flock`` on ``.lock`` (its content is never written), so the kernel releases it when the holder exits,
    crashes or is killed, and a refused resume leaves the folder byte for byte as it was."""
    import fcntl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / LOCK, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise RunLockedError(f"{out}: another dvmap process is using this run folder; wait for it to finish or "
                             f"choose another --out") from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


class RunFolder:
    """A run folder: ``run.json``, a results JSONL (``results``) and its rejected-lines file (``rejected``).

    ``fingerprint_key`` names the ``run.json`` field holding the data fingerprint (``items_fingerprint`` for
    ``eval``, ``data_fingerprint`` for ``eval-pairs``).
    """

    def __init__(self, out: str | Path, results: str, rejected: str, fingerprint_key: str = "data_fingerprint"):
        self.out = Path(out)
        self.results = self.out / results
        self.rejected = self.out / rejected
        self.fingerprint_key = fingerprint_key

    def lock(self):
        return run_lock(self.out)

    def run_record(self) -> dict[str, Any] | None:
        return load_json_object(self.out / RUN, required=False)

    def check_resume(self, guarded: dict[str, Any], fingerprint: str, defaults: dict[str, Any] | None = None,
                     data_note: str = "", legacy_fingerprint: Callable[[], str | None] | None = None
                     ) -> dict[str, Any] | None:
        """The folder's run record, after checking that the guarded settings and the data fingerprint match
        (raises :class:`RunSettingsError`, writing nothing); None for a new folder. ``legacy_fingerprint``: the
        fingerprint of a run written before run.json recorded one (from the data the folder keeps)."""
        previous = self.run_record()
        if previous is None:
            return None
        if self.fingerprint_key not in previous and legacy_fingerprint is not None:
            previous = {**previous, self.fingerprint_key: legacy_fingerprint()}
        was_config = previous.get("config", {})
        defaults = defaults or {}
        diffs = [f"{k}: was {was_config.get(k, defaults.get(k))!r}, now {v!r}" for k, v in guarded.items()
                 if was_config.get(k, defaults.get(k)) != v]
        if previous.get(self.fingerprint_key) != fingerprint:
            diffs.append("data: " + (data_note or "another data set"))
        if diffs:
            raise RunSettingsError(f"{self.out} holds a run with other settings or data; resuming would mix two "
                                   "runs. Differences: " + "; ".join(diffs) + ". Rerun with the original settings "
                                   "and data, or use another --out")
        return previous

    def encode_run(self, record: dict[str, Any]) -> str:
        """``run.json``'s text; NaN or Infinity anywhere is refused (it is not JSON and cannot be resumed)."""
        try:
            return json.dumps(record, indent=2, allow_nan=False, default=_json_default) + "\n"
        except ValueError:
            bad = [k for k, v in record.get("config", {}).items() if isinstance(v, float) and not math.isfinite(v)]
            raise RunSettingsError(f"{self.out / RUN}: setting(s) {bad or '?'} are NaN or infinite; give finite "
                                   f"values") from None

    def write_run(self, record: dict[str, Any]) -> None:
        """``run.json``, atomically (see :meth:`encode_run`)."""
        text = self.encode_run(record)
        with atomic_path(self.out / RUN) as tmp:
            tmp.write_text(text)

    @staticmethod
    def resumed(previous: dict[str, Any], unguarded: dict[str, Any]) -> dict[str, Any]:
        return {**previous, "config": {**previous.get("config", {}), **unguarded},
                "resumed": [*previous.get("resumed", []), time.strftime("%Y-%m-%dT%H:%M:%S")]}

    def scan(self, validate: Validator | None, key: Callable[[dict], Hashable] | None) -> JsonlScan:
        return read_jsonl(self.results, validate, key)

    def repair(self, validate: Validator | None, key: Callable[[dict], Hashable] | None) -> JsonlScan:
        """Keep every valid record; move every other line (torn, unreadable, invalid, repeated) into the
        rejected-lines file, so the results file ends on a whole line before anything is appended."""
        scan = self.scan(validate, key)
        if not scan.skipped:
            return scan
        drop = set(scan.bad) | set(scan.duplicates)
        with open(self.results, "rb") as fh, open(self.rejected, "ab") as rej:
            for lineno, line in enumerate(fh, 1):
                if lineno in drop:
                    rej.write(line if line.endswith(b"\n") else line + b"\n")
            rej.flush()
            os.fsync(rej.fileno())
        with atomic_path(self.results) as tmp:
            tmp.write_bytes(b"".join(scan.raw))
        return scan


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def fingerprint_records(records: list[dict]) -> str:
    """A content hash of table rows (the pairs a run scores), independent of the file's name or format."""
    import hashlib

    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
