"""``dvmap compare RUN [RUN ...]``: evaluation runs side by side (paper Table 2 rows, Figures 6 and 9).

Per split: every point metric of the metric registry (Acc, LC, WD in the paper's formula and normalised, 1 - JSD,
the unparsed rate, TV, and any metric registered later) of every run, with the baselines fitted on the first run's
training split as extra rows; the registry's probability metrics per run over all items. Then each run's difference
from the first on the items both share, with a **paired** bootstrap 95% interval (items are resampled, the same
draw for both runs), overall, and the accuracy gain per country and per question; and the same differences for the
probability metrics. Items are matched by content (split, profile, question), so runs made with other prompt
templates, other ``--limit`` subsets or from the release's files still line up; runs on different item sets are
compared on their intersection only, and the output says how many items that is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dvmap_verl import stats
from dvmap_verl.errors import InputError
from dvmap_verl.evaluation import distributional as D
from dvmap_verl.evaluation import metric_registry, scoring
from dvmap_verl.evaluation import metric_values as V
from dvmap_verl.evaluation import metrics as M
from dvmap_verl.io import atomic_path, save_figure, write_json
from dvmap_verl.data.schema import COUNTRY_BY_NAME

KEY = ["split", "profile_id", "q_id"]


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The run's scored (item, sample) rows and its items, originals only (flip twins are a robustness check)."""
    items, preds, run, _ = scoring.load_run(Path(run_dir))
    if preds.empty:
        raise InputError(f"{run_dir}: no predictions to compare (run `dvmap eval` into it first)")
    scored = scoring.scored_predictions(items, preds)
    originals = items[~items["counterfactual"]].drop(columns=["messages"]).reset_index(drop=True)
    return scored[~scored["counterfactual"]].reset_index(drop=True), run, originals


def per_item(scored: pd.DataFrame, run: str = "a run") -> pd.DataFrame:
    """One row per item, indexed by content key: ``correct`` and ``lc`` (means over its samples), ``country``,
    ``category`` and the value of every item-level point metric of the registry (one column each). Raises
    :class:`InputError` naming ``run`` and the key when two items share one."""
    agg = V.item_values(V.point_items(scored)).set_index(KEY)
    if agg.index.has_duplicates:
        key = agg.index[agg.index.duplicated()][0]
        raise InputError(f"{run}: two items share the (split, profile, question) key {tuple(map(str, key))}; "
                         f"compare pairs runs on that key, so each item's must be unique (import the benchmark "
                         f"again: duplicate rows are refused now)")
    return agg


def paired_bootstrap(diff: np.ndarray, draws: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of per-item differences and the 95% percentile interval over ``draws`` resamples of the items
    (:func:`dvmap_verl.stats.paired_bootstrap`)."""
    diff = np.asarray(diff, dtype=float)
    return stats.paired_bootstrap(np.zeros(len(diff)), diff, draws, rng=rng)


def fmt_ci(mean: float, lo: float, hi: float) -> str:
    """``+0.100 [+0.050, +0.150]``, or the mean alone without an interval."""
    if np.isnan(lo):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


_fmt_ci = fmt_ci  # the name cli.py imports today


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

    Every point metric of the registry (metric_registry.py) is a column of the per-split tables and a difference
    from the first run (item-level metrics with a paired bootstrap interval); the probability metrics make one
    table over all items. Raises InputError when two runs share no item, or when a run's items occur in the
    reference run's training table (same profile and question, or same prompt) unless ``drop_overlap`` leaves those
    items out (counted in the notes). Nothing is written before these checks pass.
    """
    if len(run_dirs) < 1:
        raise InputError("give at least one run folder")
    names = list(names) if names else [Path(r).name for r in run_dirs]
    if len(names) != len(run_dirs) or len(set(names)) != len(names):
        raise InputError(f"--names needs one distinct name per run ({len(run_dirs)} runs, names {names})")
    loaded = [load_run(r) for r in run_dirs]
    out: dict[str, Any] = {"runs": {n: str(r) for n, r in zip(names, run_dirs)}, "bootstrap": bootstrap,
                           "reference": names[0]}
    out["tables_read"] = [f"{r}: {len(o):,} items, {len(s):,} scored (item, sample) rows"
                          for r, (s, _, o) in zip(run_dirs, loaded)]
    train = loaded[0][1].get("config", {}).get("train")
    train_items, leak_notes = None, []
    if train:
        from dvmap_verl.evaluation.evaluate import load_items

        train_items = load_items([train], test_items=False)
        out["tables_read"].append(f"{train} (training split of {names[0]}): {len(train_items):,} rows")
        kept, leak_notes = _without_training_items(dict(zip(names, loaded)), train_items, train, drop_overlap)
        loaded = list(kept.values())
    scored = {n: s for n, (s, _, _) in zip(names, loaded)}
    _require_shared_items(names, scored)
    for n, r in zip(names, run_dirs):  # a duplicate key is named with its run folder before anything is written
        per_item(scored[n], f"{r}")

    headline = _headline(scored, train_items if baselines else None, loaded[0][2])
    out["headline"] = [{"split": s, "system": n, **v} for (s, n), v in zip(headline.index, headline.to_dict("records"))]
    out["distributional"] = _distributional(scored)
    rng = np.random.default_rng(seed)
    diffs, by_country, by_question = _differences(names, scored, bootstrap, rng)
    out["differences"] = diffs
    out["by_country"] = {k: v.to_dict("records") for k, v in by_country.items()}
    out["by_question"] = {k: v.to_dict("records") for k, v in by_question.items()}
    out["distributional_differences"] = _probability_differences(names, scored, bootstrap, rng)
    peer = _peer_benchmarks(names, scored, bootstrap, rng)
    if peer is not None:
        out["peer_benchmarks"] = peer
    out["notes"] = [f"{d['run']} vs {names[0]}: compared on the {d['shared_items']:,} items both hold "
                    f"({d['items_ref']:,} and {d['items_run']:,} in all)"
                    for d in diffs if d["shared_items"] < max(d["items_ref"], d["items_run"])] + leak_notes
    out["notes"] += _unreadable_notes(out["distributional"])

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(out_dir, names[0], by_country, by_question)
    out["plots"] = [p.name for p in plots]
    write_json(out_dir / "compare.json", out)
    with atomic_path(out_dir / "compare.md") as tmp:
        tmp.write_text(_markdown(out, headline, plots))
    out["_headline_frame"] = headline
    return out


def _headline_row(part: pd.DataFrame) -> dict[str, Any]:
    return V.point_summary(part) | {"items": int(part["item"].nunique())}


def _headline(scored: dict[str, pd.DataFrame], train_items: pd.DataFrame | None,
              test_items: pd.DataFrame) -> pd.DataFrame:
    """Every run on its own items, per split and overall (and the baselines fitted on the training split):
    one column per point metric of the registry, and ``items``; indexed by (split, system)."""
    table = {}
    for name, s in scored.items():
        for split, part in [("all", s), *s.groupby("split", sort=True)]:
            table[(split, name)] = _headline_row(part)
    if train_items is not None:
        from dvmap_verl.evaluation.baselines import run_baselines

        for bname, preds in run_baselines(train_items, test_items).items():
            bs = M.point_scores(preds)
            for split, part in [("all", bs), *bs.groupby("split", sort=True)]:
                table[(split, f"baseline: {bname}")] = _headline_row(part)
    columns = [m.name for m in metric_registry.metrics(needs_probs=False)] + ["items"]
    headline = pd.DataFrame.from_dict(table, orient="index")[columns]
    headline.index = pd.MultiIndex.from_tuples(headline.index, names=["split", "system"])
    return headline


def _distributional(scored: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Every probability metric of the registry per run, over all its items (readout probabilities where the run
    has them, else the distribution of its sampled answers)."""
    rows = []
    for name, s in scored.items():
        items, p, readout = D.item_probabilities(s)
        unreadable = int(items["unreadable"].sum()) if "unreadable" in items else 0
        rows.append({"system": name, "readout": readout, **D.score_distributions(items, p),
                     "unreadable_items": unreadable})
    return rows


def _unreadable_notes(distributional: list[dict[str, Any]]) -> list[str]:
    """A run whose items had no readable answer scores the uniform distribution there (the report's rule): say
    so, per run, since a difference from such a run measures the uniform distribution, not the model."""
    return [f"{r['system']}: {r['unreadable_items']:,} of {r['items']:,} items "
            f"({r['unreadable_items'] / r['items']:.0%}) had no readable answer and count as uniform; its "
            f"distributional scores and differences on them are the uniform distribution's, not the model's"
            for r in distributional if r.get("unreadable_items") and r.get("items")]


def _metric_differences(ms: list, a: pd.DataFrame, b: pd.DataFrame, summaries: list[dict], bootstrap: int,
                        rng: np.random.Generator) -> dict[str, float]:
    """``d_<name>`` per metric, b minus a: item-level ones from the per-item values with a paired bootstrap interval
    (``_lo``, ``_hi``), on the items where both values are defined; a cell or split value is no mean over items: the difference of the two values, no interval."""
    row: dict[str, float] = {}
    for m in ms:
        if m.level == "item":
            d = (b[m.name] - a[m.name]).to_numpy(dtype=float)
            mean, lo, hi = paired_bootstrap(d[np.isfinite(d)], bootstrap, rng)  # items where both are defined
            row |= {f"d_{m.name}": mean, f"d_{m.name}_lo": lo, f"d_{m.name}_hi": hi}
        else:
            row[f"d_{m.name}"] = summaries[1].get(m.name, float("nan")) - summaries[0].get(m.name, float("nan"))
    return row


def _differences(names: list[str], scored: dict[str, pd.DataFrame], bootstrap: int, rng: np.random.Generator):
    """Each run minus the first on the items both hold, for every point metric of the registry
    (:func:`_metric_differences`); and the accuracy gain per country and per question."""
    point = metric_registry.metrics(needs_probs=False)
    ref = per_item(scored[names[0]])
    diffs, by_country, by_question = [], {}, {}
    for name in names[1:]:
        other = per_item(scored[name])
        shared = ref.index.intersection(other.index)
        a, b = ref.loc[shared], other.loc[shared]
        summaries = [V.point_summary(scored[n][scored[n].set_index(KEY).index.isin(shared)]) if len(shared) else {}
                     for n in (names[0], name)]
        diffs.append({"run": name, "shared_items": int(len(shared)), "items_ref": int(len(ref)),
                      "items_run": int(len(other)), **_metric_differences(point, a, b, summaries, bootstrap, rng)})
        by_country[name] = _grouped(a, b, "country", bootstrap, rng)
        by_question[name] = _grouped(a, b, "q_id", bootstrap, rng)
    return diffs, by_country, by_question


def _probability_differences(names: list[str], scored: dict[str, pd.DataFrame], bootstrap: int,
                             rng: np.random.Generator) -> list[dict[str, Any]]:
    """Each run minus the first on the items both hold, for every probability metric of the registry (item
    distributions as in :func:`_distributional`)."""
    probability = metric_registry.metrics(needs_probs=True)
    per = {}
    for n in names:
        items, p, _ = D.item_probabilities(scored[n])
        per[n] = items, p, V.item_values(V.probability_items(items, p), needs_probs=True).set_index(KEY)
    ref_items, ref_p, ref = per[names[0]]
    rows = []
    for name in names[1:]:
        items, p, other = per[name]
        shared = ref.index.intersection(other.index)
        in_a, in_b = ref.index.isin(shared), other.index.isin(shared)
        summaries = [V.probability_summary(ref_items[in_a], ref_p[in_a]), V.probability_summary(items[in_b], p[in_b])] \
            if len(shared) else [{}, {}]
        rows.append({"run": name, "shared_items": int(len(shared)),
                     **_metric_differences(probability, ref.loc[shared], other.loc[shared], summaries, bootstrap,
                                           rng)})
    return rows


def _peer_values(scored: pd.DataFrame) -> pd.DataFrame | None:
    """Per imported item of a run, keyed by content: ``benchmark`` and every benchmark-tagged metric against the
    item's target (:func:`benchmark_metrics.benchmark_item_values`); None when the run has no imported item."""
    from dvmap_verl.evaluation.benchmark_metrics import benchmark_item_values

    items, p, _ = D.item_probabilities(scored)
    values = benchmark_item_values(items, p)
    if values is not None:
        values.index = pd.MultiIndex.from_frame(items.loc[values.index, KEY])
    return values


def _peer_benchmarks(names: list[str], scored: dict[str, pd.DataFrame], bootstrap: int,
                     rng: np.random.Generator) -> dict[str, Any] | None:
    """The peer benchmarks' metrics (registry entries tagged "benchmark", scored against each imported item's
    ``target``): per run and benchmark the mean over the items where each is computed; and each run minus the
    first per benchmark on the items both hold, with paired bootstrap intervals. None when no run holds an
    imported item."""
    per = {n: v for n in names if (v := _peer_values(scored[n])) is not None}
    if not per:
        return None
    ms = metric_registry.metrics(benchmark=True)
    summary = [{"system": n, "benchmark": b, "items": int(len(part)),
                **{m.name: float(np.nanmean(part[m.name])) if part[m.name].notna().any() else float("nan")
                   for m in ms}}
               for n, v in per.items() for b, part in v.groupby("benchmark", sort=True)]
    diffs = []
    ref = per.get(names[0])
    for name in names[1:] if ref is not None else []:
        if name not in per:
            continue
        shared = ref.index.intersection(per[name].index)
        for bench in sorted(set(ref.loc[shared, "benchmark"])):
            sel = shared[(ref.loc[shared, "benchmark"] == bench).to_numpy()]
            row: dict[str, Any] = {"run": name, "benchmark": bench, "shared_items": int(len(sel))}
            for m in ms:
                d = (per[name].loc[sel, m.name] - ref.loc[sel, m.name]).to_numpy(dtype=float)
                d = d[np.isfinite(d)]  # items where both are computed
                mean, lo, hi = paired_bootstrap(d, bootstrap, rng) if len(d) else (float("nan"),) * 3
                row |= {f"d_{m.name}": mean, f"d_{m.name}_lo": lo, f"d_{m.name}_hi": hi}
            diffs.append(row)
    return {"metrics": [m.name for m in ms], "summary": summary, "differences": diffs}


def _peer_markdown(peer: dict[str, Any], reference: str, bootstrap: int) -> list[str]:
    ms = [metric_registry.get_metric(n) for n in peer["metrics"]]
    lines = ["## Peer benchmarks (against each imported item's target; each benchmark's own metric marked *)", "",
             "| system | benchmark | items | " + " | ".join(m.heading for m in ms) + " |",
             "|---|---|---:|" + "---:|" * len(ms)]
    for r in peer["summary"]:
        cells = ["—" if np.isnan(r[m.name]) else f"{r[m.name]:.4f}{' *' if r['benchmark'] in m.tags else ''}"
                 for m in ms]  # —: not computed on any item (an ordinal metric on non-ordinal items)
        lines.append(f"| {r['system']} | {r['benchmark']} | {r['items']:,} | " + " | ".join(cells) + " |")
    if peer["differences"]:
        lines += ["", f"## Peer benchmark difference from `{reference}` (same items; paired bootstrap 95% interval, "
                      f"{bootstrap} draws)", "",
                  "| run | benchmark | shared items | " + " | ".join(f"Δ {m.heading}" for m in ms) + " |",
                  "|---|---|---:|" + "---|" * len(ms)]
        for d in peer["differences"]:
            cells = ["—" if np.isnan(d[f"d_{m.name}"]) else fmt_ci(d[f"d_{m.name}"], d[f"d_{m.name}_lo"],
                                                                     d[f"d_{m.name}_hi"]) for m in ms]
            lines.append(f"| {d['run']} | {d['benchmark']} | {d['shared_items']:,} | " + " | ".join(cells) + " |")
    return lines + [""]


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


def _markdown(out: dict, headline: pd.DataFrame, plots: list[Path]) -> str:
    from dvmap_verl.evaluation.report import markdown_table

    lines = ["# Runs compared", "", "Runs: " + ", ".join(f"`{n}` ({p})" for n, p in out["runs"].items()), ""]
    for note in out["notes"]:
        lines += [f"> **Note.** {note}", ""]
    for split, part in headline.groupby(level="split", sort=False):
        t = part.droplevel("split")
        t.index.name = "system"
        lines += [f"## {split}", "", markdown_table(t), ""]
    if out["differences"]:
        lines += [f"## Difference from `{out['reference']}` (paired bootstrap 95% interval, {out['bootstrap']} draws)",
                  ""] + _differences_table(out["differences"], metric_registry.metrics(needs_probs=False))
    if out.get("distributional"):
        frame = pd.DataFrame(out["distributional"]).set_index("system")
        lines += ["## Distributional (all items of each run)", "", markdown_table(frame.dropna(axis=1, how="all")),
                  ""]
    if out.get("distributional_differences"):
        lines += [f"## Distributional difference from `{out['reference']}` (same items; paired intervals for the "
                  f"item-level metrics)", ""]
        lines += _differences_table(out["distributional_differences"], metric_registry.metrics(needs_probs=True))
    if out.get("peer_benchmarks"):
        lines += _peer_markdown(out["peer_benchmarks"], out["reference"], out["bootstrap"])
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    return "\n".join(lines)


def _differences_table(rows: list[dict], ms: list) -> list[str]:
    lines = ["| run | shared items | " + " | ".join(f"Δ {m.heading}" for m in ms) + " |",
             "|---|---|" + "---|" * len(ms)]
    for d in rows:
        cells = [fmt_ci(d[f"d_{m.name}"], d[f"d_{m.name}_lo"], d[f"d_{m.name}_hi"]) if m.level == "item"
                 else f"{d[f'd_{m.name}']:+.3f}" for m in ms]
        lines.append(f"| {d['run']} | {d['shared_items']:,} | " + " | ".join(cells) + " |")
    return lines + [""]


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
