"""A run folder read and scored: the items table, the predictions (checked record by record) and one scored row per
(item, sample), the input of ``report``, ``compare`` and ``analyze``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.errors import MissingInputError
from dvmap_verl.evaluation import metrics as M
from dvmap_verl.evaluation.evaluate import ITEMS, PREDICTIONS, RUN, scan_predictions
from dvmap_verl.evaluation.option_order import valid_permutation
from dvmap_verl.evaluation.runs import load_json_object, run_samples
from dvmap_verl.reward.answers import release_correct, release_rule_applies, resolve_completion


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, list[str]]:
    """(items, predictions, run.json, notes): the predictions checked against the items (records out of range
    are set aside and counted in the notes). Raises FileNotFoundError when the folder holds no items table."""
    run_dir = Path(run_dir)
    if not (run_dir / ITEMS).exists():
        raise MissingInputError(f"{run_dir}: no {ITEMS}; run `dvmap eval` or `dvmap baselines` into it first")
    items = pd.read_parquet(run_dir / ITEMS)
    items["options"] = items["options"].map(list)
    run = load_json_object(run_dir / RUN, required=False) or {}
    # pred and probs are checked against each item's own options: an out-of-range record is set aside and named.
    # ... and sample numbers against the run's samples per item (a sample 3 of a 1-sample run is not a sample).
    scan = scan_predictions(run_dir / PREDICTIONS, n_items=len(items), n_options=items["options"].map(len).tolist(),
                            n_samples=run_samples(run))
    notes = []
    if scan.skipped:
        notes.append(scan.describe(run_dir / PREDICTIONS) + "; rerun `dvmap eval` with the same settings to set "
                     "them aside and generate those samples again")
    return items, scan.frame, run, notes


def scored_predictions(items: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """One row per (item, sample) with the item's fields, the answer re-read by the current resolver, the
    authors' rule (``release``, ``release_applies``) and the point scores (metrics.point_scores)."""
    extra = [c for c in ("their_is_correct", "uid", "probs", "readout", "reasoning", "logprobs", "order",
                         "permutation") if c in preds]
    df = preds[["item", "sample", "pred", "completion", *extra]].merge(items.drop(columns=["messages"]), on="item",
                                                                        how="inner")
    df["pred"] = df["pred"].astype(int)
    _reread(df)
    truth = [o[t] for o, t in zip(df["options"], df["truth"])]
    # The authors' rule, recomputed from the raw completion: runs of any age are scored the same way.
    df["release_applies"] = [release_rule_applies(o, t) for o, t in zip(df["options"], truth)]
    df["release"] = [release_correct(c, o, t) for c, o, t in zip(df["completion"], df["options"], truth)]
    return M.point_scores(df.drop(columns=["completion", "reasoning"], errors="ignore"))


def _reread(df: pd.DataFrame) -> None:
    """The resolver column by the reward's current reading (reward/answers.py), recomputed from each point answer's
    raw completion like the authors' rule below, so that runs written or imported under an older reading score the
    same way. Records with ``probs`` (probability and verbalised readouts) or no completion keep their ``pred``."""
    point = [isinstance(c, str) and bool(c) for c in df["completion"]]
    if "probs" in df:
        point = [p and not isinstance(q, (list, tuple, np.ndarray)) for p, q in zip(point, df["probs"])]
    if any(point):
        at = df.index[point]
        reasoning = df.loc[at, "reasoning"] if "reasoning" in df else pd.Series(None, index=at, dtype=object)
        perms = df.loc[at, "permutation"] if "permutation" in df else pd.Series(None, index=at, dtype=object)
        df.loc[at, "pred"] = [_reread_one(c, o, stored, r, perm) for c, o, stored, r, perm in
                              zip(df.loc[at, "completion"], df.loc[at, "options"], df.loc[at, "pred"], reasoning,
                                  perms)]


def _reread_one(completion: str, options: Any, stored: int, reasoning: Any, perm: Any = None) -> int:
    if valid_permutation(perm, len(options)):  # --option-order: read against the displayed list, map back
        pred = _reread_one(completion, [options[p] for p in perm], stored, reasoning)
        return -1 if pred < 0 else int(perm[pred])
    pred = resolve_completion(completion, options)
    if pred is None and stored >= 0 and isinstance(reasoning, str):
        # answered from the reasoning (--answer-from-reasoning): re-read the text the answer came from
        pred = resolve_completion(reasoning, options)
    return -1 if pred is None else pred
