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
from dvmap_verl.evaluation.readouts import ANSWER_CLOSE, ANSWER_OPEN, SCORING_CHUNK, ReadoutRun, Scores, \
    get_readout  # noqa: F401 (SCORING_CHUNK re-exported: its old home is this module)
from dvmap_verl.evaluation.option_order import OrderPlan, parse_order, total_samples
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
    readout: str = "sampling"  # how a probability over the options is read (readouts.readout_names())
    answer_from_reasoning: bool = False  # a reply without an answer block is read from its reasoning's last block
    option_order: str = "given"  # given | reversed | shuffled:K (see option_order.py; orders on the sample axis)
    calibrate_temperature: str | None = None  # split whose items fit the log-prob temperature (calibration.py)
    calibrate_on: str = "rps"  # what that fit minimises: rps or tv

    def __post_init__(self):
        get_readout(self.readout).check(self)  # an unknown readout or settings it cannot run with: InputError
        self.option_order = str(parse_order(self.option_order))
        if self.calibrate_temperature is not None:
            from dvmap_verl.evaluation.calibration import check_calibration_settings

            check_calibration_settings(self.readout, self.calibrate_on)

    def generation(self) -> GenerationSettings:
        # A readout may stop generation early (after-reasoning readouts stop where the answer would begin).
        return GenerationSettings(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
                                  chat_template_kwargs={"enable_thinking": self.enable_thinking},
                                  stop=tuple(get_readout(self.readout).stop))


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
    missing = [ATTRIBUTE_KEYS[a] for a in ATTRIBUTE_NAMES if ATTRIBUTE_KEYS[a] not in items]
    if missing:  # items of another benchmark (dvmap import-benchmark) carry no DVMap profile
        sources = ", ".join(sorted(items["data_source"].astype(str).unique())) if "data_source" in items else "?"
        raise InputError(f"--template {template}: these items ({sources}) have no DVMap profile attributes "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); keep their prompts (no "
                         f"--template), or import them with `dvmap import-benchmark --template ...`")
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
    missing = [ATTRIBUTE_KEYS[a] for a in ATTRIBUTE_NAMES if ATTRIBUTE_KEYS[a] not in items]
    if missing:  # items of another benchmark (dvmap import-benchmark) carry no DVMap profile to flip
        sources = ", ".join(sorted(items["data_source"].astype(str).unique())) if "data_source" in items else "?"
        raise InputError(f"--flip {attribute}: these items ({sources}) have no DVMap profile attributes "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}) to swap; --flip works on "
                         f"DVMap/WVS items only")
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

    def __init__(self, path: Path, items: pd.DataFrame, sync_every: int = 64, answer_from_reasoning: bool = False,
                 plan: OrderPlan | None = None):
        self.plan = plan  # --option-order: answers are read against the displayed options, stored canonical
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
        options = self.plan.displayed(r.item, r.sample, self.options[r.item]) if self.plan else \
            tuple(self.options[r.item])
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
        if self.plan:
            self.plan.to_canonical(rec)
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
        """:meth:`write_probs` of the normalised ``scores``."""
        return self.write_probs(r, scores.probs(), readout, reasoning, reply, scores.logprobs)

    def write_probs(self, r: Request, probs, readout: str, reasoning: str = "",
                    reply: Reply | None = None, logprobs=None) -> dict[str, Any]:
        """A probability readout's record: ``probs`` over the options (K floats summing to 1), ``pred`` its argmax,
        and as ``completion`` the reasoning (if any) closed with the argmax in answer tags, so that any parser reads
        the argmax. ``reply``: the sampled reasoning's reply (``logprob-after-reasoning``), for its finish reason
        and kind. ``logprobs``: the raw summed log-probs behind ``probs`` (a scoring readout's), kept so that a
        temperature fit can be redone from the records. :class:`ValueError` when ``probs`` is not a finite
        distribution over the item's K options."""
        probs = [float(p) for p in probs]
        k = len(self.options[r.item])
        if len(probs) != k or not np.isfinite(probs).all() or min(probs) < 0 or abs(sum(probs) - 1) > 1e-6:
            raise ValueError(f"item {r.item}: the {readout} readout gave {probs!r}, not a distribution over its "
                             f"{k} options")
        pred = int(np.argmax(probs))
        answer = self.options[r.item][pred]
        rec = {"item": r.item, "sample": r.sample, "completion": f"{reasoning}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}",
               "answer": answer, "pred": pred, "probs": [round(p, 8) for p in probs], "readout": readout}
        if logprobs is not None:  # None stands for -inf (JSON has no infinity)
            rec["logprobs"] = [float(lp) if np.isfinite(lp) else None for lp in logprobs]
        if self.plan:  # the canonical options were scored after the permuted prompt: probs are canonical already
            self.plan.annotate(rec)
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
                    "template", "flip_attribute", "flip_map", "readout", "answer_from_reasoning", "option_order")


def build_items(config: EvalConfig) -> pd.DataFrame:
    """The run's items (counterfactual flip items included); reads data only, writes nothing."""
    items = load_items(config.data, config.limit, config.seed)
    if config.template:
        items["messages"] = rerender(items, config.template)
    if config.flip_attribute:
        items = pd.concat([items, counterfactual_items(items, config.flip_attribute, config.flip_map)],
                          ignore_index=True)
    order_plan(items, config)  # an item whose options cannot be shown in another order fails here
    return items


def order_plan(items: pd.DataFrame, config: EvalConfig) -> OrderPlan | None:
    """The run's option orders (None for ``--option-order given``: records as without the option)."""
    if config.option_order == "given":
        return None
    return OrderPlan(items, config.option_order, config.seed, config.samples)


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
    :func:`run_lock`; without them this takes the lock and prepares the folder itself. The run's readout
    (:func:`~dvmap_verl.evaluation.readouts.get_readout`) makes the records; a backend it cannot use is refused
    (:class:`~dvmap_verl.errors.InputError`) before any request.
    """
    out = Path(out_dir)
    if items is None:
        with run_lock(out):
            return run_eval(backend, out, config, quiet, prepare_run(out, config))
    readout = get_readout(config.readout)
    readout.check_backend(backend)
    samples = total_samples(config.samples, config.option_order)  # samples per order x orders per item
    scan = repair_predictions(out / PREDICTIONS, n_items=len(items), n_options=items["k"].astype(int).tolist(),
                              n_samples=samples if samples and samples > 0 else None)
    if scan.skipped and not quiet:
        print(f"{scan.describe(out / PREDICTIONS)}; moved to {out / REJECTED}; "
              f"{len(scan.frame)} valid record(s) kept, the rest is generated again", file=sys.stderr)
    done = scan.frame
    finished = set(zip(done["item"].astype(int), done["sample"].astype(int)))
    messages = items["messages"].map(lambda m: tuple(json.loads(m))).tolist()
    plan = order_plan(items, config)
    requests = [Request(int(i), s, plan.request_messages(i, s) if plan else messages[i])
                for i in range(len(items)) for s in range(samples) if (i, s) not in finished]
    writer = PredictionWriter(out / PREDICTIONS, items, answer_from_reasoning=config.answer_from_reasoning,
                              plan=plan)
    errors: list[str] = []
    bar = tqdm(total=len(requests), desc=f"eval {config.model}", unit="sample", disable=quiet)
    try:
        readout.run(_readout_run(backend, items, config, writer, bar, errors), requests)
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


def _readout_run(backend: Backend, items: pd.DataFrame, config: EvalConfig, writer: PredictionWriter, bar,
                 errors: list[str]) -> ReadoutRun:
    """What the readout writes through: every record and every failure counts one request on the progress bar
    (with the per-replica counts of a replicated backend); a failure's line is kept in ``errors``."""
    per_replica = getattr(backend, "done_per_replica", None)
    readout = config.readout

    def done() -> None:
        bar.update(1)
        if per_replica is not None:
            bar.set_postfix_str("per replica " + "/".join(map(str, per_replica)), refresh=False)

    def on_error(r: Request, e: BaseException) -> None:
        errors.append(f"item {r.item} sample {r.sample}: {type(e).__name__}: {e}")
        bar.update(1)

    def record_reply(r: Request, reply: Reply | str) -> None:
        writer.write(r, reply)
        done()

    def record_probs(r: Request, probs, reasoning: str = "", reply: Reply | None = None, logprobs=None) -> None:
        try:
            writer.write_probs(r, probs, readout, reasoning, reply, logprobs)
        except ValueError as e:  # a readout's unusable distribution fails its request, counted; a rerun retries
            on_error(r, e)
            return
        done()

    return ReadoutRun(backend, items, config, record_reply, record_probs, on_error)
