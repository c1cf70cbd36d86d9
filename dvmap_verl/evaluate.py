"""``dvmap eval``: run a model on benchmark items and record every completion, resumably.

A run folder holds ``items.parquet`` (the items, counterfactual flip items included), ``run.json`` (settings) and
``predictions.jsonl`` (one line per (item, sample) with the raw completion). A rerun skips finished (item, sample)
pairs; a line cut short by a kill is dropped on resume, so nothing is lost or written twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from dvmap_verl.answers import extract_answer, option_set, resolve_lenient
from dvmap_verl.backends import Backend, GenerationSettings, Request
from dvmap_verl.dataset import to_verl_table
from dvmap_verl.io import atomic_path, write_json
from dvmap_verl.prompts import USER_TEMPLATES, user_prompt
from dvmap_verl.schema import ATTRIBUTE_BY_NAME, ATTRIBUTE_KEYS, ATTRIBUTE_NAMES

PREDICTIONS = "predictions.jsonl"
ITEMS = "items.parquet"
RUN = "run.json"

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
    train: str | None = None  # training split, for the baselines shown beside the model
    note: str | None = None  # shown at the top of the report (e.g. "untrained demo model")

    def generation(self) -> GenerationSettings:
        return GenerationSettings(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
                                  chat_template_kwargs={"enable_thinking": self.enable_thinking})


# ---------------------------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------------------------


def load_items(paths: list[str | Path], limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Flat items (one row per benchmark item) from VeRL parquet files or release folders/files."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file() and path.suffix == ".parquet" and _is_verl(path):
            verl = pd.read_parquet(path)
        else:
            from dvmap_verl.release import find_release_parts, read_release_table

            parts = find_release_parts(path)
            verl = pd.concat([to_verl_table(read_release_table(p), name, keep_prompt=True).to_pandas()
                              for name, p in parts.items()], ignore_index=True)
        frames.append(_flatten(verl, path))
    items = pd.concat(frames, ignore_index=True)
    if limit is not None and limit < len(items):
        # A seeded sample across splits, in original order, so --limit runs are representative and reproducible.
        keep = np.sort(np.random.default_rng(seed).choice(len(items), limit, replace=False))
        items = items.iloc[keep].reset_index(drop=True)
    items["item"] = np.arange(len(items))
    items["pair"] = items["item"]
    return items


def _is_verl(path: Path) -> bool:
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    return {"prompt", "extra_info", "reward_model"} <= names


def _flatten(verl: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = {"prompt", "extra_info", "reward_model"} - set(verl.columns)
    if missing:
        raise ValueError(f"{path}: not a DVMap VeRL parquet, missing column(s) {sorted(missing)}")
    extra = pd.DataFrame(list(verl["extra_info"]))
    need = {"options", "answer_index", "q_id", "country", "split"}
    if need - set(extra.columns):
        raise ValueError(f"{path}: extra_info lacks {sorted(need - set(extra.columns))}; prepare it with dvmap prepare")
    extra["options"] = extra["options"].map(list)
    extra["k"] = extra["options"].map(len)
    extra["truth"] = extra["answer_index"].astype(int)
    extra["messages"] = [json.dumps([{"role": m["role"], "content": m["content"]} for m in msgs])
                         for msgs in verl["prompt"]]
    extra["source_file"] = str(path)
    extra["data_source"] = verl["data_source"].astype(str).to_numpy()
    extra["counterfactual"] = False
    return extra


def counterfactual_items(items: pd.DataFrame, attribute: str, mapping: dict[str, str]) -> pd.DataFrame:
    """Items with ``attribute`` swapped by ``mapping`` (others fixed), paired with their originals by ``pair``.

    The user prompt is rebuilt from the attributes with the template that reproduces the original prompt (the
    release's, byte for byte, or the paper's); items whose prompt matches neither are skipped.
    """
    if attribute not in ATTRIBUTE_BY_NAME:
        raise ValueError(f"unknown attribute {attribute!r}; known: {list(ATTRIBUTE_NAMES)}")
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


def read_predictions(path: Path, repair: bool = False) -> pd.DataFrame:
    """Complete records of a predictions file; with ``repair``, cut a partial last line off the file."""
    cols = ["item", "sample", "completion", "answer", "pred", "lenient"]
    if not path.exists():
        return pd.DataFrame(columns=cols)
    records, good_end, offset = [], 0, 0
    with open(path, "rb") as fh:
        for line in fh:
            offset += len(line)
            if not line.endswith(b"\n"):
                break  # cut short by a kill
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_end = offset
    if repair and good_end < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    df = pd.DataFrame.from_records(records, columns=cols)
    return df.drop_duplicates(["item", "sample"], keep="first")


class PredictionWriter:
    """Appends one JSON line per result; flushed per line, fsynced every ``sync_every`` lines and at close."""

    def __init__(self, path: Path, items: pd.DataFrame, sync_every: int = 64):
        self.fh = open(path, "a", encoding="utf-8")
        self.options = items["options"].tolist()
        self.truth = items["truth"].tolist()
        self.sync_every = sync_every
        self.count = 0

    def write(self, r: Request, completion: str) -> dict[str, Any]:
        answer = extract_answer(completion)
        options = tuple(self.options[r.item])
        pred = option_set(options).resolve(answer)
        rec = {
            "item": r.item, "sample": r.sample, "completion": completion, "answer": answer,
            "pred": -1 if pred is None else pred,
            "lenient": resolve_lenient(answer, options, options[self.truth[r.item]]),
        }
        self.fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.fh.flush()
        self.count += 1
        if self.count % self.sync_every == 0:
            os.fsync(self.fh.fileno())
        return rec

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------


def prepare_run(out_dir: str | Path, config: EvalConfig) -> pd.DataFrame:
    """Create (or check, on resume) the run folder; returns the items."""
    out = Path(out_dir)
    items = load_items(config.data, config.limit, config.seed)  # fails before anything is written
    if config.flip_attribute:
        items = pd.concat([items, counterfactual_items(items, config.flip_attribute, config.flip_map)],
                          ignore_index=True)
    fingerprint = items_fingerprint(items)
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        if previous.get("items_fingerprint") != fingerprint:
            raise ValueError(f"{out}: holds a run on other items (different data, --limit or flip settings); "
                             f"use another --out")
        if previous["config"]["model"] != config.model or previous["config"]["samples"] > config.samples:
            raise ValueError(f"{out}: holds a run of model {previous['config']['model']!r} with "
                             f"{previous['config']['samples']} samples; use another --out")
    else:
        with atomic_path(out / ITEMS) as tmp:
            items.to_parquet(tmp, index=False)
    write_json(run_file, {"config": asdict(config), "items_fingerprint": fingerprint, "n_items": len(items),
                          "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return items


def run_eval(backend: Backend, out_dir: str | Path, config: EvalConfig, quiet: bool = False,
             items: pd.DataFrame | None = None) -> dict[str, Any]:
    """Generate every missing (item, sample) and append it to predictions.jsonl (``items``: from
    :func:`prepare_run`, when the caller checked the data before loading a model)."""
    out = Path(out_dir)
    if items is None:
        items = prepare_run(out, config)
    done = read_predictions(out / PREDICTIONS, repair=True)
    finished = set(zip(done["item"].astype(int), done["sample"].astype(int)))
    messages = items["messages"].map(lambda m: tuple(json.loads(m))).tolist()
    requests = [Request(int(i), s, messages[i]) for i in range(len(items)) for s in range(config.samples)
                if (i, s) not in finished]
    writer = PredictionWriter(out / PREDICTIONS, items)
    errors: list[str] = []
    bar = tqdm(total=len(requests), desc=f"eval {config.model}", unit="sample", disable=quiet)

    def on_result(r: Request, text: str) -> None:
        writer.write(r, text)
        bar.update(1)

    def on_error(r: Request, e: BaseException) -> None:
        errors.append(f"item {r.item} sample {r.sample}: {type(e).__name__}: {e}")
        bar.update(1)

    try:
        backend.run(requests, on_result, on_error)
    finally:
        writer.close()
        bar.close()
    status = {"requested": len(requests), "resumed_from": len(finished), "written": writer.count,
              "failed": len(errors), "errors": errors[:20]}
    if errors:
        status["hint"] = "rerun the same command to retry the failed samples"
    return status
