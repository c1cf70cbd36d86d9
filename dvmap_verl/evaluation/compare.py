"""``dvmap compare RUN [RUN ...]``: evaluation runs side by side (paper Table 2 rows, Figures 6 and 9).

Per split: Acc, LC, WD (paper formula and normalised) and the unparsed rate of every run, with the baselines fitted
on the first run's training split as extra rows. Then each run's difference from the first on the items both
share, with a **paired** bootstrap 95% interval (items are resampled, the same draw for both runs), overall, per
country and per question. Items are matched by content (split, profile, question), so runs made with other prompt
templates, other ``--limit`` subsets or from the release's files still line up; runs on different item sets are
compared on their intersection only, and the output says how many items that is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dvmap_verl.evaluation import metrics as M
from dvmap_verl.io import atomic_path, save_figure, write_json
from dvmap_verl.data.schema import COUNTRY_BY_NAME
from dvmap_verl.errors import InputError

KEY = ["split", "profile_id", "q_id"]
HEADLINE = ["acc", "lc", "wd", "wd_norm", "unparsed_rate"]
CHUNK = 100  # bootstrap draws per vectorised chunk: memory stays ~CHUNK x items


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The run's scored (item, sample) rows and its items, originals only (flip twins are a robustness check)."""
    from dvmap_verl.evaluation.report import _load_run, _scored

    items, preds, run, _ = _load_run(Path(run_dir))
    if preds.empty:
        raise InputError(f"{run_dir}: no predictions to compare (run `dvmap eval` into it first)")
    scored = _scored(items, preds)
    originals = items[~items["counterfactual"]].drop(columns=["messages"]).reset_index(drop=True)
    return scored[~scored["counterfactual"]].reset_index(drop=True), run, originals


def per_item(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per item (mean over its samples), indexed by content key."""
    agg = scored.groupby(KEY, sort=False).agg(correct=("correct", "mean"), lc=("lc", "mean"),
                                              country=("country", "first"), category=("category", "first"))
    if agg.index.has_duplicates:
        raise ValueError("two items share a (split, profile, question) key")
    return agg


def paired_bootstrap(diff: np.ndarray, draws: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of per-item differences and the 95% percentile interval over ``draws`` resamples of the items."""
    n = len(diff)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(diff.mean())
    if draws <= 0:
        return mean, float("nan"), float("nan")
    means = []
    for start in range(0, draws, CHUNK):
        idx = rng.integers(0, n, size=(min(CHUNK, draws - start), n))
        means.append(diff[idx].mean(axis=1))
    lo, hi = np.percentile(np.concatenate(means), [2.5, 97.5])
    return mean, float(lo), float(hi)


def _grouped(a: pd.DataFrame, b: pd.DataFrame, by: str, draws: int, rng) -> pd.DataFrame:
    rows = []
    grouping = b.groupby(level=by, sort=True) if by in b.index.names else b.groupby(by, sort=True)
    for group, part in grouping:
        d = (part["correct"] - a.loc[part.index, "correct"]).to_numpy()
        mean, lo, hi = paired_bootstrap(d, draws, rng)
        rows.append({by: group, "items": len(d), "d_acc": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, names: Sequence[str] | None = None,
                 bootstrap: int = 1000, seed: int = 0, baselines: bool = True,
                 drop_overlap: bool = False) -> dict[str, Any]:
    """Write compare.json, compare.md and the gain plots to ``out_dir``; returns what compare.json holds.

    Raises ValueError when two runs share no item, or when a run's items occur in the reference run's training
    table (same profile and question, or same prompt) unless ``drop_overlap`` leaves those items out (counted in
    the notes). Nothing is written before these checks pass.
    """
    if len(run_dirs) < 1:
        raise InputError("give at least one run folder")
    names = list(names) if names else [Path(r).name for r in run_dirs]
    if len(names) != len(run_dirs) or len(set(names)) != len(names):
        raise InputError(f"--names needs one distinct name per run ({len(run_dirs)} runs, names {names})")
    loaded = [load_run(r) for r in run_dirs]
    scored = {n: s for n, (s, _, _) in zip(names, loaded)}
    runs = {n: r for n, (_, r, _) in zip(names, loaded)}
    out: dict[str, Any] = {"runs": {n: str(r) for n, r in zip(names, run_dirs)}, "bootstrap": bootstrap,
                           "reference": names[0]}
    out["tables_read"] = [f"{r}: {len(o):,} items, {len(s):,} scored (item, sample) rows"
                          for r, (s, _, o) in zip(run_dirs, loaded)]
    train = runs[names[0]].get("config", {}).get("train")
    train_items, leak_notes = None, []
    if train:
        from dvmap_verl.evaluation.evaluate import load_items

        train_items = load_items([train], test_items=False)
        out["tables_read"].append(f"{train} (training split of {names[0]}): {len(train_items):,} rows")
        loaded, leak_notes = _without_training_items(dict(zip(names, loaded)), train_items, train, drop_overlap)
        scored = {n: s for n, (s, _, _) in loaded.items()}
        loaded = list(loaded.values())
    _require_shared_items(names, scored)

    # Headline: every run on its own items, per split and overall.
    table = {}

    def headline_row(part: pd.DataFrame) -> dict[str, Any]:
        summary = M.summary(part)
        return {k: summary.get(k, float("nan")) for k in HEADLINE} | {"items": int(part["item"].nunique())}

    for name, s in scored.items():
        for split, part in [("all", s), *s.groupby("split", sort=True)]:
            table[(split, name)] = headline_row(part)
    if baselines and train:
        from dvmap_verl.evaluation.baselines import run_baselines

        for bname, preds in run_baselines(train_items, loaded[0][2]).items():
            bs = M.point_scores(preds)
            for split, part in [("all", bs), *bs.groupby("split", sort=True)]:
                table[(split, f"baseline: {bname}")] = headline_row(part)
    headline = pd.DataFrame.from_dict(table, orient="index")
    headline.index = pd.MultiIndex.from_tuples(headline.index, names=["split", "system"])
    out["headline"] = [{"split": s, "system": n, **v} for (s, n), v in table.items()]

    # Differences from the first run, paired on shared items.
    rng = np.random.default_rng(seed)
    ref = per_item(scored[names[0]])
    diffs, by_country, by_question = [], {}, {}
    for name in names[1:]:
        other = per_item(scored[name])
        shared = ref.index.intersection(other.index)
        a, b = ref.loc[shared], other.loc[shared]
        d_acc = paired_bootstrap((b["correct"] - a["correct"]).to_numpy(), bootstrap, rng)
        d_lc = paired_bootstrap((b["lc"] - a["lc"]).to_numpy(), bootstrap, rng)
        keys_a = scored[names[0]].set_index(KEY).index.isin(shared)
        keys_b = scored[name].set_index(KEY).index.isin(shared)
        wd_a = M.summary(scored[names[0]][keys_a])["wd"] if len(shared) else float("nan")
        wd_b = M.summary(scored[name][keys_b])["wd"] if len(shared) else float("nan")
        diffs.append({"run": name, "shared_items": int(len(shared)), "items_ref": int(len(ref)),
                      "items_run": int(len(other)), "d_acc": d_acc[0], "d_acc_lo": d_acc[1], "d_acc_hi": d_acc[2],
                      "d_lc": d_lc[0], "d_lc_lo": d_lc[1], "d_lc_hi": d_lc[2], "d_wd": wd_b - wd_a})
        by_country[name] = _grouped(a, b, "country", bootstrap, rng)
        by_question[name] = _grouped(a, b, "q_id", bootstrap, rng)
    out["differences"] = diffs
    out["by_country"] = {k: v.to_dict("records") for k, v in by_country.items()}
    out["by_question"] = {k: v.to_dict("records") for k, v in by_question.items()}
    out["notes"] = [f"{d['run']} vs {names[0]}: compared on the {d['shared_items']:,} items both hold "
                    f"({d['items_ref']:,} and {d['items_run']:,} in all)"
                    for d in diffs if d["shared_items"] < max(d["items_ref"], d["items_run"])] + leak_notes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(out_dir, names[0], by_country, by_question)
    out["plots"] = [p.name for p in plots]
    write_json(out_dir / "compare.json", out)
    with atomic_path(out_dir / "compare.md") as tmp:
        tmp.write_text(_markdown(out, headline, plots))
    out["_headline_frame"] = headline
    return out


def _item_set(name: str, scored: pd.DataFrame) -> str:
    """``name: N items (split n, ...; e.g. profile/question)`` for an error message."""
    items = scored.drop_duplicates(KEY)
    splits = ", ".join(f"{k} {v:,}" for k, v in items["split"].value_counts(sort=False).items())
    example = "; e.g. " + "/".join(map(str, items.iloc[0][KEY])) if len(items) else ""
    return f"{name}: {len(items):,} items ({splits or 'none'}{example})"


def _require_shared_items(names: list[str], scored: dict[str, pd.DataFrame]) -> None:
    """A difference over no shared item is not a number: refuse, naming both item sets."""
    ref = pd.MultiIndex.from_frame(scored[names[0]][KEY].astype(str)).unique()
    for name in names[1:]:
        other = pd.MultiIndex.from_frame(scored[name][KEY].astype(str)).unique()
        if not len(ref.intersection(other)):
            raise InputError(f"{names[0]} and {name} share no item (items match on split, profile and question), "
                             f"so there is no difference to compute: {_item_set(names[0], scored[names[0]])}; "
                             f"{_item_set(name, scored[name])}. Compare runs made on the same benchmark files")


def _without_training_items(loaded: dict, train_items: pd.DataFrame, train: str, drop: bool):
    """Each run's (scored, run, items) without the items the training table holds; refused unless ``drop``."""
    from dvmap_verl.evaluation.baselines import training_overlap

    kept, notes = {}, []
    for name, (scored, run, items) in loaded.items():
        overlap = training_overlap(train_items, items)
        if overlap.any():
            what = (f"{name}: {int(overlap.sum()):,} of its {len(items):,} items also occur in the training table "
                    f"{train} (same profile and question, or the same prompt)")
            if not drop:
                raise InputError(what + "; scores on them measure recall, not generalisation. Compare runs on "
                                 "held-out items, or pass --drop-overlap to leave them out (counted)")
            notes.append(what + "; left out (--drop-overlap)")
            gone = pd.MultiIndex.from_frame(items.loc[overlap.to_numpy(), KEY].astype(str))
            scored = scored[~pd.MultiIndex.from_frame(scored[KEY].astype(str)).isin(gone)].reset_index(drop=True)
            items = items[~overlap.to_numpy()].reset_index(drop=True)
        kept[name] = (scored, run, items)
    return kept, notes


def _fmt_ci(mean: float, lo: float, hi: float) -> str:
    if np.isnan(lo):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def fmt_ci(mean: float, lo: float, hi: float) -> str:
    """A difference with its 95% interval, ``+0.012 [-0.003, +0.027]``, or alone when there is none (NaN bounds:
    ``--bootstrap 0``). Public for ``dvmap compare``'s console lines."""
    return _fmt_ci(mean, lo, hi)


def _markdown(out: dict, headline: pd.DataFrame, plots: list[Path]) -> str:
    from dvmap_verl.evaluation.report import _table

    lines = ["# Runs compared", "", "Runs: " + ", ".join(f"`{n}` ({p})" for n, p in out["runs"].items()), ""]
    for note in out["notes"]:
        lines += [f"> **Note.** {note}", ""]
    for split, part in headline.groupby(level="split", sort=False):
        t = part.droplevel("split")
        t.index.name = "system"
        lines += [f"## {split}", "", _table(t), ""]
    if out["differences"]:
        lines += [f"## Difference from `{out['reference']}` (paired bootstrap 95% interval, {out['bootstrap']} draws)",
                  "", "| run | shared items | Δ Acc | Δ LC | Δ WD |", "|---|---|---|---|---|"]
        for d in out["differences"]:
            lines.append(f"| {d['run']} | {d['shared_items']:,} | {_fmt_ci(d['d_acc'], d['d_acc_lo'], d['d_acc_hi'])}"
                         f" | {_fmt_ci(d['d_lc'], d['d_lc_lo'], d['d_lc_hi'])} | {d['d_wd']:+.3f} |")
        lines.append("")
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    return "\n".join(lines)


def _plots(out_dir: Path, reference: str, by_country: dict, by_question: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for label, data, col in (("country", by_country, "country"), ("question", by_question, "q_id")):
        if not data:
            continue
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * max(len(v) for v in data.values()) * len(data)), 4))
        width = 0.8 / len(data)
        for i, (name, frame) in enumerate(data.items()):
            if frame.empty:
                continue
            x = np.arange(len(frame)) + i * width
            err = np.vstack([frame["d_acc"] - frame["lo"], frame["hi"] - frame["d_acc"]])
            ax.bar(x, frame["d_acc"], width, yerr=np.nan_to_num(err), capsize=2, label=name)
            labels = [COUNTRY_BY_NAME[c].iso3 if c in COUNTRY_BY_NAME else c for c in frame[col]]
            ax.set_xticks(np.arange(len(frame)) + width * (len(data) - 1) / 2, labels, rotation=45, ha="right")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(f"accuracy gain over {reference}")
        ax.set_title(f"Accuracy gain per {label} (95% paired bootstrap intervals)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / f"gain_by_{label}.png"))
    return paths
