"""One run-folder protocol for ``dvmap eval``, ``eval-pairs`` and ``import-run``, and the record schemas their
files are checked against. Reading is :mod:`dvmap_verl.jsonl`'s bounded reader (its names are re-exported here).

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
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from dvmap_verl.evaluation.backends import REPLY_KINDS
from dvmap_verl.io import atomic_path, json_default
from dvmap_verl.jsonl import (MAX_DEPTH, MAX_INT_DIGITS, MAX_LINE_BYTES, JsonlScan, RunFileError,  # noqa: F401
                              Validator, dumps_line, line_list, load_json_object, loads_bounded, nesting_depth,
                              read_jsonl)
from dvmap_verl.errors import EnvironmentProblem, InputError

RUN, LOCK = "run.json", ".lock"
#: Unparsed answer marker in ``pred``.
UNPARSED = -1
#: Tolerance of ``sum(probs) == 1`` (writers round each probability to 8 decimals).
PROBS_TOLERANCE = 1e-4


class RunSettingsError(InputError):
    pass


class RunLockedError(EnvironmentProblem):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Record schemas
# ---------------------------------------------------------------------------------------------------------------


def _int(v: Any) -> bool:
    return type(v) is int  # bool is not an item number


def run_samples(run: dict | None) -> int | None:
    """Samples per item a run folder's ``run.json`` asked for (``config.samples`` times the orders per item of
    ``config.option_order``), or None when it names no positive integer (a baselines-only run records 0; an old or
    hand-made folder may record nothing)."""
    config = (run or {}).get("config") or {}
    samples = config.get("samples")
    if not (_int(samples) and samples > 0):
        return None
    from dvmap_verl.evaluation.option_order import order_count  # --option-order: orders ride on the sample axis

    return samples * order_count(config.get("option_order"))


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
            return json.dumps(record, indent=2, allow_nan=False, default=json_default) + "\n"
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


def fingerprint_records(records: list[dict]) -> str:
    """A content hash of table rows (the pairs a run scores), independent of the file's name or format."""
    import hashlib

    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
