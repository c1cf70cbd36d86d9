"""Honest baselines, fitted on the training split and scored like a model (the same metrics code path).

On the release's data, simple lookups are competitive with the paper's LLMs, so no model number is shown without
them. A baseline that has not seen an item's question (cross-value) falls back to the uniform expectation; the
share of such items is reported as ``fallback_rate``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from dvmap_verl.data.schema import ATTRIBUTE_KEYS

FEATURES = list(ATTRIBUTE_KEYS.values())


def items_frame(verl_df: pd.DataFrame) -> pd.DataFrame:
    """Flat item table (one row per item) from a VeRL parquet frame."""
    extra = pd.DataFrame(list(verl_df["extra_info"]))
    extra["options"] = extra["options"].map(list)
    extra["k"] = extra["options"].map(len)
    extra["truth"] = extra["answer_index"].astype(int)
    extra["item"] = np.arange(len(extra))
    return extra


def _uniform(test: pd.DataFrame) -> pd.DataFrame:
    """Expected scores of a uniform random guess, as K weighted pseudo-samples per item."""
    rows = test.loc[test.index.repeat(test["k"])].copy()
    rows["pred"] = rows.groupby("item").cumcount().to_numpy()
    rows["weight"] = 1.0 / rows["k"]
    return rows


def _lookup(train: pd.DataFrame, test: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    mode = (train.groupby(keys + ["truth"], observed=True).size().rename("n").reset_index()
            .sort_values(keys + ["n", "truth"], ascending=[True] * len(keys) + [False, True])
            .drop_duplicates(keys).set_index(keys)["truth"])
    idx = pd.MultiIndex.from_frame(test[keys]) if len(keys) > 1 else pd.Index(test[keys[0]])
    pred = mode.reindex(idx).to_numpy()
    out = test.copy()
    out["pred"] = pred
    return out


def majority_question(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    return _lookup(train, test, ["q_id"])


def majority_country_question(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Most frequent answer per (country, question); per question for a country unseen in training."""
    out = _lookup(train, test, ["country", "q_id"])
    missing = out["pred"].isna()
    if missing.any():
        out.loc[missing, "pred"] = _lookup(train, test[missing], ["q_id"])["pred"].to_numpy()
    return out


def logistic_regression(train: pd.DataFrame, test: pd.DataFrame, max_iter: int = 200) -> pd.DataFrame:
    """Per question: multinomial logistic regression on the one-hot 11 attributes (unseen values -> all zeros)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder
    from threadpoolctl import threadpool_limits

    out = test.copy()
    out["pred"] = np.nan
    # Each fit is ~100 features x ~1,000 rows: BLAS threads cost more than they give (measured 4-10x slower on
    # 2 cores, the same predictions), so one thread.
    with threadpool_limits(1):
        for qid, part in test.groupby("q_id", observed=True):
            tr = train[train["q_id"] == qid]
            if tr.empty:
                continue
            classes = tr["truth"].unique()
            if len(classes) == 1:
                out.loc[part.index, "pred"] = classes[0]
                continue
            enc = OneHotEncoder(handle_unknown="ignore")
            x = enc.fit_transform(tr[FEATURES].astype(str))
            model = LogisticRegression(max_iter=max_iter, C=1.0)
            model.fit(x, tr["truth"].to_numpy())
            out.loc[part.index, "pred"] = model.predict(enc.transform(part[FEATURES].astype(str)))
    return out


BASELINES: dict[str, tuple[Callable | None, str]] = {
    "uniform": (None, "uniform random guess (expected value)"),
    "majority_question": (majority_question, "most frequent training answer per question"),
    "majority_country_question": (majority_country_question,
                                  "most frequent training answer per (country, question)"),
    "logistic_regression": (logistic_regression, "per-question logistic regression on the 11 attributes"),
}


def run_baselines(train: pd.DataFrame, test: pd.DataFrame, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Predictions table per baseline (``pred`` = -1 never occurs; fallback rows carry uniform pseudo-samples)."""
    out = {}
    for name in names or list(BASELINES):
        fn, _ = BASELINES[name]
        if fn is None:
            preds = _uniform(test)
        else:
            preds = fn(train, test)
            fallback = preds["pred"].isna()
            preds["weight"] = 1.0
            preds["fallback"] = fallback
            if fallback.any():
                uni = _uniform(test[fallback.to_numpy()])
                uni["fallback"] = True
                preds = pd.concat([preds[~fallback], uni], ignore_index=True)
        preds["pred"] = preds["pred"].astype(int)
        preds["sample"] = 0
        out[name] = preds
    return out


def _user_prompt(messages: pd.Series) -> pd.Series:
    """The last user message of each item's JSON chat (the system message may differ between preparations)."""
    import json

    return messages.map(lambda m: next((x["content"] for x in reversed(json.loads(m)) if x["role"] == "user"), ""))


def training_overlap(train: pd.DataFrame, test: pd.DataFrame) -> pd.Series:
    """Which test items the training table also holds: the same profile (its 11 attributes) and question, or the
    same user prompt. Counterfactual (flip) rows are never marked; their originals are.

    ``train``, ``test``: flat item tables (:func:`dvmap_verl.evaluation.evaluate.load_items`). Returns a boolean
    Series aligned with ``test``.

    >>> row = {k: "x" for k in FEATURES} | {"q_id": "Q1", "messages": '[{"role": "user", "content": "p"}]',
    ...                                     "counterfactual": False}
    >>> train = pd.DataFrame([row])
    >>> test = pd.DataFrame([row, row | {"q_id": "Q2", "messages": '[{"role": "user", "content": "p2"}]'},
    ...                      row | {"q_id": "Q3"}])
    >>> training_overlap(train, test).tolist()
    [True, False, True]
    """
    keys = FEATURES + ["q_id"]
    seen = pd.MultiIndex.from_frame(train[keys].astype(str))
    same_pair = pd.MultiIndex.from_frame(test[keys].astype(str)).isin(seen)
    same_prompt = np.zeros(len(test), bool)
    if "messages" in train and "messages" in test:
        same_prompt = _user_prompt(test["messages"]).isin(set(_user_prompt(train["messages"]))).to_numpy()
    original = ~test["counterfactual"].astype(bool).to_numpy() if "counterfactual" in test else True
    return pd.Series((same_pair | same_prompt) & original, index=test.index)


def drop_items(items: pd.DataFrame, drop: pd.Series) -> pd.DataFrame:
    """``items`` without the rows marked in ``drop`` and their flip twins, ``item`` and ``pair`` renumbered 0..n-1.

    >>> items = pd.DataFrame({"item": [0, 1, 2, 3], "pair": [0, 1, 2, 0], "counterfactual": [False] * 3 + [True]})
    >>> drop_items(items, pd.Series([True, False, False, False]))[["item", "pair"]].values.tolist()
    [[0, 0], [1, 1]]
    """
    gone = set(items.loc[drop.to_numpy(), "item"])
    kept = items[~items["item"].isin(gone) & ~items["pair"].isin(gone)].reset_index(drop=True)
    renumber = {old: new for new, old in enumerate(kept["item"])}
    kept["item"] = kept["item"].map(renumber)
    kept["pair"] = kept["pair"].map(renumber)
    return kept
