"""``dvmap eval``: run a model on benchmark items and record every completion, resumably.

A run folder holds ``items.parquet`` (the items, counterfactual flip items included), ``run.json`` (settings) and
``predictions.jsonl`` (one line per (item, sample) with the raw completion). A rerun skips finished (item, sample)
pairs. What a resume guarantees:

- every valid record is kept; a line cut short by a kill, a stray edit or a repeated pair is moved into
  ``predictions.rejected.jsonl`` (named on the console) and only what is missing is generated again;
- a resume with other generation settings or other items is refused, leaving the folder untouched;
- one process per folder: a second one is refused at once (``flock`` on ``.lock``, released even on a crash).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from dvmap_verl.reward.answers import extract_answer, option_set, read_answer  # noqa: F401 (re-exported)
from dvmap_verl.reward.distribution import parse_distribution
from dvmap_verl.evaluation.backends import Backend, GenerationSettings, Reply, Request, as_reply
from dvmap_verl.evaluation.readouts import ANSWER_CLOSE, ANSWER_OPEN, PROBABILITY_READOUTS, READOUTS, Scores, \
    cut_reasoning, option_request
from dvmap_verl.data.completeness import check_input
from dvmap_verl.data.dataset import to_verl_table
# LOCK, RUN, RunLockedError, RunSettingsError and run_lock are re-exported: their old home is this module.
from dvmap_verl.evaluation.runs import (LOCK, RUN, JsonlScan, RunFolder, RunLockedError, RunSettingsError,  # noqa: F401
                                        dumps_line, line_list, prediction_problem, read_jsonl, run_lock)
from dvmap_verl.io import atomic_path
from dvmap_verl.data.prompts import (USER_TEMPLATES, chat_messages, states_distribution, system_prompt,
                                     template_system, user_prompt)
from dvmap_verl.data.schema import ATTRIBUTE_BY_NAME, ATTRIBUTE_KEYS, ATTRIBUTE_NAMES
from dvmap_verl.errors import InputError

PREDICTIONS = "predictions.jsonl"
ITEMS = "items.parquet"

#: Default counterfactual (paper §5.6): invert income, keep the other 10 attributes.
DEFAULT_FLIP = ("Income Bracket", {"High income": "Low income", "Low income": "High income"})


@dataclass
class EvalConfig:
    backend: str
    model: str
    data: list[str]
    samples: int = 1
    temperature: float = 0.7
    max_tokens: int = 1024
    seed: int = 0
    limit: int | None = None
    enable_thinking: bool = False
    flip_attribute: str | None = None
    flip_map: dict[str, str] = field(default_factory=dict)
    template: str | None = None  # re-render every prompt with this template (None: the prompts as prepared)
    train: str | None = None  # training split, for the baselines shown beside the model
    engine: dict[str, Any] = field(default_factory=dict)  # engine settings (replicas, TP, max_model_len, ...)
    note: str | None = None  # shown at the top of the report (e.g. "untrained demo model")
    readout: str = "sampling"  # how a probability over the options is read (see readouts.READOUTS)
    answer_from_reasoning: bool = False  # a reply without an answer block is read from its reasoning's last block

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise InputError(f"unknown readout {self.readout!r}; known: {READOUTS}")
        if self.readout == "logprob" and self.samples != 1:
            raise InputError("the logprob readout is deterministic (no sampling): use --samples 1")

    def generation(self) -> GenerationSettings:
        # After-reasoning readouts stop the reasoning where the answer would begin; the options are scored there.
        stop = (ANSWER_OPEN,) if self.readout == "logprob-after-reasoning" else ()
        return GenerationSettings(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
                                  chat_template_kwargs={"enable_thinking": self.enable_thinking}, stop=stop)


# ---------------------------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------------------------


def load_items(paths: list[str | Path], limit: int | None = None, seed: int = 0,
               test_items: bool = True) -> pd.DataFrame:
    """Flat items (one row per benchmark item) from VeRL parquet files or release locations (clone root, folders,
    files: :func:`dvmap_verl.data.release.tables_to_read`, which checks the layout first and raises
    ``ReleaseInputError`` with the completeness table when a table to read is not whole). ``test_items``: a
    release folder's ``train`` table is skipped (with a note) unless named itself; False for a training table."""
    frames = []
    for path in paths:
        path = Path(path)
        check_input(path, "--data" if test_items else "--train", "evaluation")
        if path.is_file() and path.suffix == ".parquet" and _is_verl(path):
            frames.append(_flatten(pd.read_parquet(path), path))
            continue
        from dvmap_verl.data.release import read_release_table, tables_to_read

        for t in tables_to_read(path, test_items=test_items, what="evaluation" if test_items else "training"):
            verl = to_verl_table(read_release_table(t.path), t.split, keep_prompt=True).to_pandas()
            frames.append(_flatten(verl, t.path))
    items = pd.concat(frames, ignore_index=True)
    if limit is not None and limit < len(items):
        # A seeded sample across splits, in original order, so --limit runs are representative and reproducible.
        keep = np.sort(np.random.default_rng(seed).choice(len(items), limit, replace=False))
        items = items.iloc[keep].reset_index(drop=True)
    items["item"] = np.arange(len(items))
    items["pair"] = items["item"]
    return items


def describe_sources(items: pd.DataFrame) -> list[str]:
    """One line per input table: its path, split and items taken from it."""
    counts = items[~items["counterfactual"]].groupby(["source_file", "split"], sort=False).size()
    return [f"{path} ({split}): {n:,} items" for (path, split), n in counts.items()]


def _is_verl(path: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError) as e:  # "Parquet magic bytes not found": say which file
        raise InputError(f"{path}: not a readable parquet file ({e})") from None
    return {"prompt", "extra_info", "reward_model"} <= names


def _flatten(verl: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = {"prompt", "extra_info", "reward_model"} - set(verl.columns)
    if missing:
        raise InputError(f"{path}: not a DVMap VeRL parquet, missing column(s) {sorted(missing)}")
    if verl.empty:
        raise InputError(f"{path}: the split is empty (0 rows); nothing to evaluate (see the split's counts in "
                         f"stats.json beside it: dvmap prepare kept no rows for it)")
    extra = pd.DataFrame(list(verl["extra_info"]))
    need = {"options", "answer_index", "q_id", "country", "split"}
    if need - set(extra.columns):
        raise InputError(f"{path}: extra_info lacks {sorted(need - set(extra.columns))}; prepare it with dvmap prepare")
    extra["options"] = extra["options"].map(list)
    extra["k"] = extra["options"].map(len)
    extra["truth"] = extra["answer_index"].astype(int)
    extra["messages"] = [json.dumps([{"role": m["role"], "content": m["content"]} for m in msgs])
                         for msgs in verl["prompt"]]
    extra["source_file"] = str(path)
    extra["data_source"] = verl["data_source"].astype(str).to_numpy()
    extra["counterfactual"] = False
    return extra


def rerender(items: pd.DataFrame, template: str) -> list[str]:
    """Every item's chat messages rebuilt from its attributes, question and options with ``template`` and the system
    message it asks for: one prepared dataset serves every prompt strategy of the paper's Table 4."""
    if template not in USER_TEMPLATES:
        raise InputError(f"unknown prompt template {template!r}; known: {sorted(USER_TEMPLATES)}")
    system = system_prompt(template_system(template))
    out = []
    for r in items.to_dict("records"):
        fields = {a: r[ATTRIBUTE_KEYS[a]] for a in ATTRIBUTE_NAMES}
        fields.update(Question=r["question"], Options=", ".join(r["options"]))
        out.append(json.dumps(chat_messages(user_prompt(fields, template), system)))
    return out


def counterfactual_items(items: pd.DataFrame, attribute: str, mapping: dict[str, str]) -> pd.DataFrame:
    """Items with ``attribute`` swapped by ``mapping`` (others fixed), paired with their originals by ``pair``.

    The user prompt is rebuilt from the attributes with the template that reproduces the original prompt (the
    release's, byte for byte, or the paper's); items whose prompt matches neither are skipped.
    """
    if attribute not in ATTRIBUTE_BY_NAME:
        raise InputError(f"unknown attribute {attribute!r}; known: {list(ATTRIBUTE_NAMES)}")
    key = ATTRIBUTE_KEYS[attribute]
    cand = items[items[key].isin(list(mapping)) & ~items["counterfactual"]]
    rows = []
    for r in cand.to_dict("records"):
        fields = {a: r[ATTRIBUTE_KEYS[a]] for a in ATTRIBUTE_NAMES}
        fields.update(Question=r["question"], Options=", ".join(r["options"]))
        messages = json.loads(r["messages"])
        template = next((t for t in USER_TEMPLATES if user_prompt(fields, t) == messages[-1]["content"]), None)
        if template is None:
            continue
        fields[attribute] = mapping[r[key]]
        messages[-1] = {"role": "user", "content": user_prompt(fields, template)}
        rows.append({**r, key: mapping[r[key]], "messages": json.dumps(messages), "counterfactual": True,
                     "pair": r["item"]})
    cf = pd.DataFrame(rows, columns=items.columns)
    cf["item"] = np.arange(len(items), len(items) + len(cf))
    return cf


def items_fingerprint(items: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for m, t in zip(items["messages"], items["truth"]):
        h.update(m.encode())
        h.update(str(t).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Predictions file
# ---------------------------------------------------------------------------------------------------------------


PREDICTION_COLUMNS = ["item", "sample", "completion", "answer", "pred"]
REJECTED = "predictions.rejected.jsonl"


@dataclass
class PredictionScan:
    """The valid records of a predictions file, and what was not valid (1-based line numbers; ``reasons``: why
    each unreadable line was set aside)."""

    frame: pd.DataFrame
    bad_lines: list[int]
    duplicate_lines: list[int]
    reasons: dict[int, str] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return len(self.bad_lines) + len(self.duplicate_lines)

    def describe(self, path: Path) -> str:
        parts = []
        if self.bad_lines:
            parts.append(f"{len(self.bad_lines)} unreadable line(s) ({line_list(self.bad_lines)})")
        if self.duplicate_lines:
            parts.append(f"{len(self.duplicate_lines)} repeated (item, sample) line(s) "
                         f"({line_list(self.duplicate_lines)})")
        why = "; ".join(f"line {n}: {self.reasons[n]}" for n in self.bad_lines[:3] if n in self.reasons)
        return (f"{path}: skipped " + " and ".join(parts) + (f" [{why}]" if why else "")) if parts else ""


def _validator(n_items: int | None, n_options: list[int] | None, n_samples: int | None = None):
    return lambda rec: prediction_problem(rec, n_options, n_items, n_samples)


def _prediction_key(rec: dict) -> tuple[int, int]:
    return rec["item"], rec["sample"]


def _as_scan(scan: JsonlScan) -> PredictionScan:
    frame = pd.DataFrame.from_records(scan.records)
    for col in PREDICTION_COLUMNS:  # extra fields (an imported run's their_is_correct, uid) are kept
        if col not in frame:
            frame[col] = pd.Series(dtype=object)
    return PredictionScan(frame, list(scan.bad), list(scan.duplicates), dict(scan.bad))


def _folder(path: Path) -> RunFolder:
    return RunFolder(path.parent, path.name, REJECTED, fingerprint_key="items_fingerprint")


def read_predictions(path: Path, n_items: int | None = None, n_options: list[int] | None = None,
                     n_samples: int | None = None) -> pd.DataFrame:
    """The valid, first-seen (item, sample) records of a predictions file; anything else is skipped, never fatal
    (:func:`scan_predictions` says what was skipped)."""
    return scan_predictions(path, n_items, n_options, n_samples).frame


def scan_predictions(path: Path, n_items: int | None = None, n_options: list[int] | None = None,
                     n_samples: int | None = None) -> PredictionScan:
    """``n_options``: each item's K, so that ``pred`` and ``probs`` are checked against the item's options;
    ``n_samples``: the run's samples per item (``run.json`` config ``samples``), so that a record numbered beyond
    them is set aside (None: unbounded)."""
    return _as_scan(read_jsonl(path, _validator(n_items, n_options, n_samples), _prediction_key))


def repair_predictions(path: Path, n_items: int | None = None, n_options: list[int] | None = None,
                       n_samples: int | None = None) -> PredictionScan:
    """Keep every valid record; move the other lines (torn writes, stray edits, invalid records, repeats) into
    ``REJECTED`` beside the file, so that a resume redoes only what is missing and nothing valid is ever deleted."""
    path = Path(path)
    return _as_scan(_folder(path).repair(_validator(n_items, n_options, n_samples), _prediction_key))


class PredictionWriter:
    """Appends one JSON line per result; flushed per line, fsynced every ``sync_every`` lines and at close.

    A record: ``item``, ``sample``, ``completion`` (the reply's text), ``answer`` (its last answer block, or None),
    ``pred`` (option index, -1 when unresolved), ``probs``/``readout`` (probability readouts), ``finish_reason``
    (the engine's, or None), ``reply`` (``text``, ``empty``, ``tool_call`` or ``reasoning_only``), and when there is
    one ``reasoning`` (what the server returned apart as reasoning) and ``dropped_parts`` (non-text content parts).
    ``answer_from_reasoning``: a reply with no answer block takes the last block of its reasoning.
    """

    def __init__(self, path: Path, items: pd.DataFrame, sync_every: int = 64, answer_from_reasoning: bool = False):
        self.fh = open(path, "a", encoding="utf-8")
        self.options = items["options"].tolist()
        # Items asked with the distribution template: their answers are stated distributions (verbalised readout).
        self.verbalised = [states_distribution(json.loads(m)[-1]["content"]) for m in items["messages"]]
        self.sync_every = sync_every
        self.answer_from_reasoning = answer_from_reasoning
        self.count = 0

    def write(self, r: Request, completion: Reply | str) -> dict[str, Any]:
        # The reward's reading (reward/answers.py): thinking removed, the last block that names an option (or, for
        # the distribution template, states a distribution); the reasoning only with --answer-from-reasoning.
        reply = as_reply(completion)
        options = tuple(self.options[r.item])
        sources = [reply.text] + ([reply.reasoning] if self.answer_from_reasoning and reply.reasoning else [])
        for text in sources:  # the reply first; its reasoning only when the reply holds no answer
            answer, probs, pred = self._read(text, options, self.verbalised[r.item])
            if pred is not None:
                break
        else:  # nothing resolved: the record keeps what the reply itself said
            answer, probs, pred = self._read(reply.text, options, self.verbalised[r.item])
        rec = {
            "item": r.item, "sample": r.sample, "completion": reply.text, "answer": answer,
            "pred": -1 if pred is None else pred,
        }
        if probs is not None:  # the argmax stands for the answer in Acc, LC and the paper's WD
            rec.update(probs=[round(p, 8) for p in probs], readout="verbalised")
        self._append(_with_reply(rec, reply))
        return rec

    @staticmethod
    def _read(text: str, options: tuple[str, ...], verbalised: bool) -> tuple[str | None, list | None, int | None]:
        probs = None
        if verbalised:
            answer, probs = read_answer(text, lambda a: parse_distribution(a, options))
        if probs is None:
            answer, pred = read_answer(text, option_set(options).resolve)
        else:
            pred = int(np.argmax(probs))
        return answer, probs, pred

    def write_scored(self, r: Request, reasoning: str, scores: Scores, readout: str,
                     reply: Reply | None = None) -> dict[str, Any]:
        """A probability readout's record: ``probs`` over the options, ``pred`` its argmax, and as ``completion``
        the reasoning (if any) closed with the argmax in answer tags, so that any parser reads the argmax.
        ``reply``: the sampled reasoning's reply (``logprob-after-reasoning``), for its finish reason and kind."""
        probs = scores.probs()
        pred = int(np.argmax(probs))
        answer = self.options[r.item][pred]
        rec = {"item": r.item, "sample": r.sample, "completion": f"{reasoning}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}",
               "answer": answer, "pred": pred, "probs": [round(p, 8) for p in probs], "readout": readout}
        self._append(_with_reply(rec, reply or Reply(reasoning, kind="text")))
        return rec

    def _append(self, rec: dict[str, Any]) -> None:
        self.fh.write(dumps_line(rec))  # ASCII: the reader splits on b"\n" only, nothing else can split a line
        self.fh.flush()
        self.count += 1
        if self.count % self.sync_every == 0:
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def _with_reply(rec: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """``rec`` (in place) with the reply's fields: ``finish_reason`` and ``reply`` always, ``reasoning`` and
    ``dropped_parts`` when there is any."""
    rec["finish_reason"] = reply.finish_reason
    rec["reply"] = reply.kind
    if reply.reasoning:
        rec["reasoning"] = reply.reasoning
    if reply.dropped_parts:
        rec["dropped_parts"] = reply.dropped_parts
    return rec


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------


#: Settings that decide what a run's completions are: a resume with any of them changed would mix two runs.
#: (The data itself is guarded by the items' fingerprint, whatever the paths are called.)
GUARDED_SETTINGS = ("backend", "model", "samples", "temperature", "max_tokens", "seed", "limit", "enable_thinking",
                    "template", "flip_attribute", "flip_map", "readout", "answer_from_reasoning")


def build_items(config: EvalConfig) -> pd.DataFrame:
    """The run's items (counterfactual flip items included); reads data only, writes nothing."""
    items = load_items(config.data, config.limit, config.seed)
    if config.template:
        items["messages"] = rerender(items, config.template)
    if config.flip_attribute:
        items = pd.concat([items, counterfactual_items(items, config.flip_attribute, config.flip_map)],
                          ignore_index=True)
    return items


def settings_diff(previous: dict[str, Any], config: EvalConfig) -> list[str]:
    """``name: was X, now Y`` for every guarded setting that differs from the run folder's."""
    defaults = asdict(EvalConfig(backend="", model="", data=[]))
    now = asdict(config)
    diffs = []
    for key in GUARDED_SETTINGS:
        was = previous.get(key, defaults[key])
        if was != now[key]:
            diffs.append(f"{key}: was {was!r}, now {now[key]!r}")
    return diffs


def prepare_run(out_dir: str | Path, config: EvalConfig, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """Create the run folder, or check on resume that it holds a run of the same items and settings (a mismatch is
    refused and leaves the folder untouched); returns the items. Call it under :func:`run_lock`."""
    out = Path(out_dir)
    if items is None:
        items = build_items(config)  # fails before anything is written
    fingerprint = items_fingerprint(items)
    folder = _folder(out / PREDICTIONS)
    now = asdict(config)
    previous = folder.check_resume({k: now[k] for k in GUARDED_SETTINGS}, fingerprint,
                                   defaults=asdict(EvalConfig(backend="", model="", data=[])),
                                   data_note=f"the data, --limit, --seed or flip settings select other items "
                                             f"({(folder.run_record() or {}).get('n_items')} before, "
                                             f"{len(items)} now)")
    if previous is not None:
        record = folder.resumed(previous, _unguarded(config))
    else:
        record = {"config": now, "items_fingerprint": fingerprint, "n_items": len(items),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        folder.encode_run(record)  # NaN settings are refused before anything is written
        with atomic_path(out / ITEMS) as tmp:
            items.to_parquet(tmp, index=False)
    folder.write_run(record)
    return items


def _unguarded(config: EvalConfig) -> dict[str, Any]:
    """Settings a resume may change (the training split for baselines, the report note, the data paths' names)."""
    return {k: v for k, v in asdict(config).items() if k not in GUARDED_SETTINGS}


def run_eval(backend: Backend, out_dir: str | Path, config: EvalConfig, quiet: bool = False,
             items: pd.DataFrame | None = None) -> dict[str, Any]:
    """Generate every missing (item, sample) and append it to predictions.jsonl.

    ``items``: from :func:`prepare_run`, when the caller checked the data before loading a model and holds
    :func:`run_lock`; without them this takes the lock and prepares the folder itself.
    """
    out = Path(out_dir)
    if items is None:
        with run_lock(out):
            return run_eval(backend, out, config, quiet, prepare_run(out, config))
    scan = repair_predictions(out / PREDICTIONS, n_items=len(items), n_options=items["k"].astype(int).tolist(),
                              n_samples=config.samples if config.samples and config.samples > 0 else None)
    if scan.skipped and not quiet:
        print(f"{scan.describe(out / PREDICTIONS)}; moved to {out / REJECTED}; "
              f"{len(scan.frame)} valid record(s) kept, the rest is generated again", file=sys.stderr)
    done = scan.frame
    finished = set(zip(done["item"].astype(int), done["sample"].astype(int)))
    messages = items["messages"].map(lambda m: tuple(json.loads(m))).tolist()
    requests = [Request(int(i), s, messages[i]) for i in range(len(items)) for s in range(config.samples)
                if (i, s) not in finished]
    writer = PredictionWriter(out / PREDICTIONS, items, answer_from_reasoning=config.answer_from_reasoning)
    errors: list[str] = []
    bar = tqdm(total=len(requests), desc=f"eval {config.model}", unit="sample", disable=quiet)

    per_replica = getattr(backend, "done_per_replica", None)

    def on_result(r: Request, reply: Reply | str) -> None:
        writer.write(r, reply)
        bar.update(1)
        if per_replica is not None:
            bar.set_postfix_str("per replica " + "/".join(map(str, per_replica)), refresh=False)

    def on_error(r: Request, e: BaseException) -> None:
        errors.append(f"item {r.item} sample {r.sample}: {type(e).__name__}: {e}")
        bar.update(1)

    try:
        if config.readout in PROBABILITY_READOUTS:
            _run_scoring(backend, requests, items, config.readout, writer, bar, on_error)
        else:
            backend.run(requests, on_result, on_error)
    finally:
        writer.close()
        bar.close()
    status = {"requested": len(requests), "resumed_from": len(finished), "written": writer.count,
              "failed": len(errors), "errors": errors[:20]}
    if scan.skipped:
        status["set_aside"] = {"lines": scan.bad_lines + scan.duplicate_lines, "file": str(out / REJECTED)}
    if errors:
        status["hint"] = "rerun the same command to retry the failed samples"
    return status


#: Items per reasoning-then-scoring round: a kill loses at most this many.
SCORING_CHUNK = 32


def _run_scoring(backend: Backend, requests: list[Request], items: pd.DataFrame, readout: str,
                 writer: PredictionWriter, bar, on_error) -> None:
    """Probability readouts: score every item's options (after sampling its reasoning, for
    ``logprob-after-reasoning``), one chunk at a time so that finished records land as they finish."""
    if not hasattr(backend, "score"):
        raise InputError(f"the {backend.name} backend cannot read option probabilities; use --readout sampling")
    options = items["options"].tolist()
    for start in range(0, len(requests), SCORING_CHUNK):
        chunk = requests[start:start + SCORING_CHUNK]
        reasoning: dict[tuple[int, int], str] = {}
        replies: dict[tuple[int, int], Reply] = {}
        if readout == "logprob-after-reasoning":
            backend.run(chunk, lambda r, reply: replies.__setitem__((r.item, r.sample), as_reply(reply)), on_error)
            chunk = [r for r in chunk if (r.item, r.sample) in replies]
        by_key = {(r.item, r.sample): r for r in chunk}
        score_requests = []
        for r in chunk:
            reply = replies.get((r.item, r.sample))
            head = cut_reasoning(reply.text if reply else "")
            reasoning[(r.item, r.sample)] = head
            score_requests.append(option_request(r.item, r.sample, r.messages, options[r.item], reasoning=head))

        def on_scores(sr, scores: Scores) -> None:
            writer.write_scored(by_key[(sr.item, sr.sample)], reasoning[(sr.item, sr.sample)], scores, readout,
                                replies.get((sr.item, sr.sample)))
            bar.update(1)

        backend.score(score_requests, on_scores, on_error)
