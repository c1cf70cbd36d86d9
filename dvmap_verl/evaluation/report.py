"""``dvmap report RUN_DIR``: metrics.json, report.md and plots for a run, with the baselines beside the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.evaluation import distributional as D
from dvmap_verl.evaluation import metric_registry
from dvmap_verl.evaluation import metrics as M
from dvmap_verl.evaluation import option_order as O
from dvmap_verl.evaluation.benchmark_metrics import benchmark_markdown, benchmark_section
from dvmap_verl.evaluation.calibration import calibration_markdown, calibration_report
from dvmap_verl.evaluation.runs import run_samples
from dvmap_verl.reward.answers import extract_answer
from dvmap_verl.evaluation.backends import REPLY_KINDS
from dvmap_verl.evaluation.baselines import BASELINES, FEATURES, run_baselines
from dvmap_verl.evaluation.evaluate import PREDICTIONS, load_items
from dvmap_verl.evaluation.scoring import load_run, scored_predictions
from dvmap_verl.io import atomic_path, remove_stale_tmp, save_figure, write_json
from dvmap_verl.data.schema import ATTRIBUTE_KEYS, COUNTRY_BY_NAME
from dvmap_verl.errors import InputError, MissingInputError

GROUPS = ["split", "country", "q_id", "category"]
SYNTHETIC_BANNER = ("> **Synthetic data.** These items come from `dvmap synth-wvs`, not from the World Values Survey; "
                    "numbers here test the pipeline and say nothing about any model's alignment.")


#: Reply counts the report and the console give per split, with what each means.
REPLY_COUNTS = {"truncated": "cut at max_tokens (finish_reason length)", "empty": "empty",
                "tool_call": "tool-call-only", "reasoning_only": "reasoning-only"}
#: A split where more than this share of replies is of one of those kinds gets a warning.
REPLY_WARN_SHARE = 0.01
_REPLY_HINTS = {"truncated": "raise --max-tokens", "empty": "the server returned no text",
                "tool_call": "the model called a tool instead of answering",
                "reasoning_only": "the answer may sit in the reasoning: a larger --max-tokens, or "
                                  "--answer-from-reasoning"}


def reply_counts(items: pd.DataFrame, preds: pd.DataFrame) -> dict[str, Any]:
    """Per split (and ``all``): records, and how many were truncated, empty, tool-call-only or reasoning-only;
    ``finish_reason_known`` (records whose engine said why it stopped), ``dropped_parts`` (non-text content parts) and
    ``answered_from_reasoning``; plus a warning per split and kind above :data:`REPLY_WARN_SHARE`.

    Records written before replies were recorded have no ``reply`` field: they count as ``empty`` when their
    completion is blank, and their finish reason as unknown."""
    if preds.empty:
        return {"by_split": {}, "all": {}, "warnings": []}
    completion = preds["completion"].fillna("").astype(str)
    derived = np.where(completion.str.strip() != "", "text", "empty")
    kind = preds["reply"].where(preds["reply"].isin(REPLY_KINDS), derived) if "reply" in preds else \
        pd.Series(derived, index=preds.index)
    finish = preds["finish_reason"] if "finish_reason" in preds else pd.Series(None, index=preds.index, dtype=object)
    dropped = pd.to_numeric(preds["dropped_parts"], errors="coerce").fillna(0) if "dropped_parts" in preds else \
        pd.Series(0, index=preds.index)
    from_reasoning = pd.Series(False, index=preds.index)
    if "reasoning" in preds:  # an answer although the reply's own text has no block: read from the reasoning
        has = (preds["reasoning"].notna() & preds["answer"].notna()).to_numpy()
        from_reasoning = pd.Series([bool(h) and extract_answer(c) is None for h, c in zip(has, completion)],
                                   index=preds.index)
    frame = pd.DataFrame({"split": preds["item"].map(items.set_index("item")["split"]).fillna("?").astype(str),
                          "truncated": finish.eq("length"), "empty": kind.eq("empty"),
                          "tool_call": kind.eq("tool_call"), "reasoning_only": kind.eq("reasoning_only"),
                          "finish_reason_known": finish.notna(), "dropped_parts": dropped,
                          "answered_from_reasoning": from_reasoning})

    def counts(part: pd.DataFrame) -> dict[str, int]:
        return {"replies": int(len(part)), **{c: int(part[c].sum()) for c in frame.columns if c != "split"}}

    by_split = {split: counts(part) for split, part in frame.groupby("split", sort=True)}
    warnings = [f"split {split}: {c[k]:,} of {c['replies']:,} replies ({c[k] / c['replies']:.1%}) were "
                f"{label}; {_REPLY_HINTS[k]}"
                for split, c in by_split.items() for k, label in REPLY_COUNTS.items()
                if c[k] > REPLY_WARN_SHARE * c["replies"]]
    return {"by_split": by_split, "all": counts(frame), "warnings": warnings}


def run_replies(run_dir: str | Path) -> dict[str, Any]:
    """:func:`reply_counts` of a run folder (for ``dvmap eval --no-report``)."""
    items, preds, _, _ = load_run(Path(run_dir))
    return reply_counts(items, preds)


def _replies_markdown(replies: dict) -> list[str]:
    frame = pd.DataFrame({**replies["by_split"], "all": replies["all"]}).T
    frame.index.name = "split"
    keep = ["replies", *REPLY_COUNTS] + [c for c in ("dropped_parts", "answered_from_reasoning") if frame[c].any()]
    lines = ["## Replies", "",
             "Replies that hold no answer are scored as unparsed (wrong). Truncated: the engine stopped at "
             "max_tokens (`finish_reason` length); empty: no text; tool-call-only: tool calls and no text; "
             f"reasoning-only: reasoning and no text. Records whose engine gave a finish reason: "
             f"{replies['all']['finish_reason_known']:,} of {replies['all']['replies']:,}.", "",
             markdown_table(frame[keep].astype(int)), ""]
    return lines  # the warnings head the report


def _imported_agreement(model: pd.DataFrame) -> dict[str, Any]:
    """An imported run: the authors' own is_correct column beside their rule recomputed here; they must agree."""
    theirs = model["their_is_correct"].astype(bool).to_numpy()
    recomputed = model["release"].astype(bool).to_numpy()
    disagree = model.loc[theirs != recomputed]
    return {"their_is_correct_acc": float(theirs.mean()), "release_recomputed_acc": float(recomputed.mean()),
            "disagreements": int(len(disagree)),
            "disagreeing_uids": disagree["uid"].astype(str).head(20).tolist() if "uid" in disagree else []}


def attribute_importance(train: pd.DataFrame, seed: int = 0, n_estimators: int = 60) -> pd.DataFrame:
    """Random-forest mean decrease in impurity of the 11 attributes, per question (paper Fig. 1c)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import OrdinalEncoder

    rows = {}
    for qid, part in train.groupby("q_id", observed=True):
        if part["truth"].nunique() < 2:
            continue
        x = OrdinalEncoder().fit_transform(part[FEATURES].astype(str))
        rf = RandomForestClassifier(n_estimators=n_estimators, max_depth=12, random_state=seed, n_jobs=2)
        rf.fit(x, part["truth"].to_numpy())
        rows[qid] = rf.feature_importances_
    names = {v: k for k, v in ATTRIBUTE_KEYS.items()}
    return pd.DataFrame(rows, index=[names[f] for f in FEATURES]).T


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if df.empty:
        return "_(none)_\n"
    cols = [str(df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(name=None):
        idx, values = row[0], row[1:]
        cells = [str(idx)] + [floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: ``lenient`` is the name ``release`` had before it followed the authors' rule to the character (kept one release).
CORRECTNESS = ("resolver", "release", "lenient")


def build_report(run_dir: str | Path, train: str | Path | None = None, bootstrap: int = 1000,
                 importance: bool = True, correctness: str = "resolver") -> dict[str, Any]:
    """``correctness``: ``resolver`` (the reward's option resolver, default) or ``release`` (the authors'
    eval_api_parallel.py rule, exactly; ``lenient`` is its old name) for the model's Acc; both are always reported.
    Under ``release`` the items their script skips (answer not a substring of the options) are left out.

    Every metric of the registry (metric_registry.py) is computed: point metrics in the headline and the
    breakdown tables, probability metrics in the "Distributional" section."""
    if correctness not in CORRECTNESS:
        raise InputError(f"unknown correctness rule {correctness!r}; known: {CORRECTNESS}")
    if correctness == "lenient":
        correctness = "release"
    run_dir = Path(run_dir)
    remove_stale_tmp(run_dir)  # what a killed report left (0-byte .tmp files beside the plots)
    items, preds, run, notes = load_run(run_dir)
    cfg = run.get("config", {})
    original = items[~items["counterfactual"]]
    synthetic = bool(original["data_source"].astype(str).str.startswith("dvmap-synthetic").any())
    out: dict[str, Any] = {"run": cfg, "synthetic": synthetic, "n_items": int(len(original)), "warnings": notes}
    tables: dict[str, pd.DataFrame] = {}

    model = None
    if preds.empty and cfg.get("backend") not in (None, "none"):  # a model run (not baselines-only) with no output
        notes.append(f"no predictions: {run_dir / PREDICTIONS} holds 0 model predictions of the {len(original):,} "
                     f"items (the run never generated, or every sample failed); this report has no model numbers; "
                     f"rerun the same `dvmap eval` command to generate them")
    if not preds.empty:
        out["replies"] = reply_counts(items, preds)
        model = _model_section(out, tables, items, preds, cfg, bootstrap, correctness)
    base_scored = _baselines_section(out, tables, original, train or cfg.get("train"), importance, model)

    dist_out, dist_extras = D.distributional_report(model, base_scored, seed=int(cfg.get("seed") or 0))
    if dist_out.get("model") or dist_out.get("baselines"):
        out["distributional"] = dist_out
    if model is not None:
        _run_sections(out, model, run, cfg)
    plots = make_plots(run_dir, out, tables, model, base_scored)
    plots += distribution_plots(run_dir, out, dist_extras)
    out["plots"] = [p.name for p in plots]
    out["metric_definitions"] = metric_definitions()
    write_json(run_dir / "metrics.json", out)
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(render_markdown(out, tables, plots))
    return out


def _run_sections(out: dict, model: pd.DataFrame, run: dict, cfg: dict) -> None:
    """The sections a run's own settings or items call for: option orders (``--option-order``), the temperature
    fit (``--calibrate-temperature``) and the peers' metrics on imported benchmark items."""
    if cfg.get("option_order", "given") != "given":
        _option_order_readouts(out, model, cfg["option_order"])
    if isinstance(run.get("calibration"), dict):
        out["temperature_calibration"] = calibration_report(model, run["calibration"])
    if "benchmark" in model:  # items from dvmap import-benchmark: the peers' own metrics against their targets
        out["benchmarks"] = benchmark_section(model, seed=int(cfg.get("seed") or 0))


def _option_order_readouts(out: dict, model: pd.DataFrame, spec: str) -> None:
    """``--option-order``: position bias and consistency (``option_order``), and with several orders the
    order-averaged distribution as its own readout (``distributional.order_averaged``)."""
    out["option_order"], items, p = O.order_report(model, spec)
    if out["option_order"]["orders"] > 1 and "distributional" in out:
        padded = np.zeros((len(p), D.MAX_K))
        padded[:, :p.shape[1]] = p[:, :D.MAX_K]
        out["distributional"]["order_averaged"] = D.score_distributions(items, padded)


def metric_definitions() -> dict[str, dict[str, Any]]:
    """What each registered metric is (metrics.json ``metric_definitions``): level, direction, kind, source."""
    return {m.name: {"level": m.level, "higher_is_better": m.higher_is_better, "needs_probs": m.needs_probs,
                     "description": m.description, "source": m.source}
            for m in metric_registry.metrics(benchmark=None)}


def _model_section(out: dict, tables: dict, items: pd.DataFrame, preds: pd.DataFrame, cfg: dict, bootstrap: int,
                   correctness: str) -> pd.DataFrame:
    """``out["model"]`` (headline, both correctness rules, coverage, breakdowns), the difficulty and flip sections;
    returns the model's scored rows (originals only)."""
    scored = scored_predictions(items, preds)
    resolver_correct = scored["correct"].copy()
    if correctness == "release":
        scored = scored[scored["release_applies"]].copy()
        scored["correct"] = scored["release"].astype(float)
    model = scored[~scored["counterfactual"]]
    head = out["model"] = M.summary(model, bootstrap=bootstrap)
    head["correctness"] = correctness
    head["resolver_acc"] = float(resolver_correct[~scored["counterfactual"]].mean())
    applies = model["release_applies"].to_numpy(bool)
    head["release_acc"] = float(model["release"][applies].astype(float).mean()) if applies.any() else float("nan")
    head["release_skipped"] = int((~applies).sum())
    head["lenient_acc"] = head["release_acc"]  # the old key, kept one release
    if "their_is_correct" in model:
        head["imported"] = _imported_agreement(model)
    n_original = int(out["n_items"])
    head["coverage"] = float(model["item"].nunique() / max(n_original, 1))
    expected = len(items) * (run_samples({"config": cfg}) or 1)  # samples per order x orders per item
    if len(scored) < expected:
        out["warnings"].append(f"partial run: {len(scored):,} of {expected:,} (item, sample) pairs have a prediction "
                               f"({head['coverage']:.1%} of the {n_original:,} items covered); the numbers are "
                               f"for the covered items only")
    for g in GROUPS + list(ATTRIBUTE_KEYS.values()):
        if g in model:
            tables[f"model_by_{g}"] = M.breakdown(model, g)
    head["by"] = {k[len("model_by_"):]: v.reset_index().to_dict("records") for k, v in tables.items()}
    out["entropy_vs_accuracy"] = M.entropy_vs_accuracy(model)
    cf = scored[scored["counterfactual"]]
    if not cf.empty:
        out["flip"] = {"attribute": cfg.get("flip_attribute"), **M.flip_rate(model, cf, by="category")}
    return model


def _baselines_section(out: dict, tables: dict, original: pd.DataFrame, train_path: Any, importance: bool,
                       model: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """``out["baselines"]`` fitted on the training split (and the attribute importance); their scored rows."""
    base_scored: dict[str, pd.DataFrame] = {}
    if not train_path:
        if model is not None:
            out["baselines_note"] = "no training split given: baselines not computed (pass --train)"
        return base_scored
    train_items = load_items([train_path], test_items=False)
    test = original.drop(columns=["messages"]).reset_index(drop=True)
    for name, preds_b in run_baselines(train_items, test).items():
        base_scored[name] = M.point_scores(preds_b)
    out["baselines"] = {name: {**M.summary(s), "description": BASELINES[name][1],
                               "fallback_rate": float(s.drop_duplicates("item")["fallback"].mean())
                               if "fallback" in s else 0.0}
                        for name, s in base_scored.items()}
    for name, s in base_scored.items():
        for g in ("split", "country", "q_id"):
            tables[f"{name}_by_{g}"] = M.breakdown(s, g)
    if importance:
        out["attribute_importance"] = attribute_importance(train_items).round(4).to_dict("index")
    return base_scored


def _wrap(text: str, width: int, lines: int = 2) -> str:
    r"""``text`` wrapped at ``width`` characters on at most ``lines`` lines (the last one ends in ... if cut).

    >>> _wrap("Not at all important", 12)
    'Not at all\nimportant'
    >>> _wrap("SOCIAL VALUES, ATTITUDES & STEREOTYPES", 14)
    'SOCIAL VALUES,\nATTITUDES &...'
    """
    import textwrap

    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder="...")) or text


def _label_points(fig, ax, xs, ys, labels, fontsize: int = 7) -> list[str]:
    """Label scatter points without two labels overlapping: each label tries four spots around its point and is
    left out when all four collide with a label already placed (or leave the axes); returns the labels left out."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed, hidden = [], []
    for x, y, label in zip(xs, ys, labels):
        for dx, dy, ha, va in ((4, 4, "left", "bottom"), (-4, 4, "right", "bottom"), (4, -4, "left", "top"),
                               (-4, -4, "right", "top")):
            t = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                            fontsize=fontsize)
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed) and ax.bbox.contains(box.x0, box.y0) \
                    and ax.bbox.contains(box.x1, box.y1):
                placed.append(box)
                break
            t.remove()
        else:
            hidden.append(str(label))
    return hidden


def make_plots(run_dir: Path, out: dict, tables: dict, model, base_scored) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []

    def save(fig, name):
        paths.append(save_figure(fig, run_dir / name))

    title_suffix = " (SYNTHETIC DATA)" if out.get("synthetic") else ""
    plots = [_accuracy_by_country_plot, _accuracy_by_question_plot, _entropy_plot, _flip_plot, _heads_plot,
             _importance_plot]
    for plot in plots:
        if plot is not _entropy_plot or model is not None:
            plot(plt, save, out, tables, title_suffix)
    return paths


def _accuracy_by_country_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Accuracy per country, the model beside the baselines (paper Fig. 6)."""
    series = {}
    if "model_by_country" in tables:
        series["model"] = tables["model_by_country"]["acc"]
    for name in ("majority_country_question", "logistic_regression", "majority_question"):
        if f"{name}_by_country" in tables:
            series[name] = tables[f"{name}_by_country"]["acc"]
    if series:
        frame = pd.DataFrame(series)
        frame.index = [COUNTRY_BY_NAME[c].iso3 if c in COUNTRY_BY_NAME else c for c in frame.index]  # as the paper
        fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(frame)), 4))
        frame.plot.bar(ax=ax, width=0.8, rot=0)
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy per country" + title_suffix)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        save(fig, "accuracy_by_country.png")


def _accuracy_by_question_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Accuracy per question, the model beside the cell majority."""
    q_series = {k: tables[f"{k}_by_q_id"]["acc"] for k in ("model", "majority_country_question")
                if f"{k}_by_q_id" in tables}
    if q_series:
        frame = pd.DataFrame(q_series)
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(frame)), 4))
        frame.plot.bar(ax=ax, width=0.8)
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title("Accuracy per question" + title_suffix)
        save(fig, "accuracy_by_question.png")


def _entropy_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Option entropy vs accuracy per question (paper §5.3)."""
    if "entropy_vs_accuracy" in out:
        ev = pd.DataFrame(out["entropy_vs_accuracy"]["per_question"])
        if not ev.empty:
            fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
            ax.scatter(ev["entropy"], ev["acc"])
            ax.set_ylabel("accuracy")
            ax.set_title(_wrap(f"Entropy vs accuracy per question, r = "
                               f"{out['entropy_vs_accuracy']['pearson_r']:.3f}" + title_suffix, 48), fontsize=10)
            hidden = _label_points(fig, ax, ev["entropy"], ev["acc"], ev["q_id"].astype(str))
            ax.set_xlabel("option entropy of the real answers (nats)" + (
                "\n" + _wrap("unlabelled where points crowd: " + ", ".join(hidden), 70, lines=3) if hidden else ""))
            save(fig, "entropy_vs_accuracy.png")


def _flip_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Value flip rate per domain (paper §5.6)."""
    if "flip" in out and out["flip"].get("by_category"):
        fl = pd.DataFrame(out["flip"]["by_category"])
        fig, ax = plt.subplots(figsize=(7, 2 + 0.5 * len(fl)), layout="constrained")
        y = np.arange(len(fl))
        ax.barh(y, fl["flip_rate"], color="C0")
        ax.set_yticks(y, [_wrap(str(c).capitalize(), 28) for c in fl["category"]], fontsize=8)
        for yi, rate, n in zip(y, fl["flip_rate"], fl["pairs"]):  # a rate of 0 draws no bar: say it
            ax.text(rate + 0.01, yi, f"{rate:.3f} (n = {int(n)})", va="center", fontsize=8)
        ax.set_xlabel("value flip rate (share of pairs whose answer changed)")
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(_wrap(f"Flip rate when inverting {out['flip']['attribute']}, {out['flip']['pairs']} pairs"
                           + title_suffix, 72), fontsize=10)
        save(fig, "flip_rate_by_domain.png")


def _heads_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Acc and LC of the model and each baseline."""
    heads = {}
    if "model" in out:
        heads["model"] = out["model"]
    heads.update(out.get("baselines", {}))
    if heads:
        frame = pd.DataFrame({k: {"acc": v.get("acc"), "lc": v.get("lc")} for k, v in heads.items()}).T
        fig, ax = plt.subplots(figsize=(7, 4))
        frame.plot.bar(ax=ax)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title("Model vs baselines" + title_suffix)
        ax.tick_params(axis="x", rotation=20)
        save(fig, "model_vs_baselines.png")


def _importance_plot(plt, save, out: dict, tables: dict, title_suffix: str) -> None:
    """Attribute importance per question (paper Fig. 1c)."""
    if out.get("attribute_importance"):
        imp = pd.DataFrame(out["attribute_importance"]).T
        fig, ax = plt.subplots(figsize=(8, max(3, 0.35 * len(imp))))
        im = ax.imshow(imp.to_numpy(), aspect="auto", cmap="viridis")
        ax.set_xticks(range(imp.shape[1]), imp.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(imp.shape[0]), imp.index, fontsize=8)
        fig.colorbar(im, ax=ax, label="mean decrease in impurity")
        ax.set_title("Attribute importance per question (random forest)" + title_suffix)
        save(fig, "attribute_importance.png")


#: The distributional metrics that have floors, as (key, label); lower is better for all of them.
FLOORED = (("rps_profile", "RPS vs profile"), ("wd_profile", "WD/(K-1) vs profile"),
           ("jsd_profile", "JSD vs profile"), ("cell_wd_norm", "cell WD/(K-1)"))


def _systems_and_floors(dist: dict) -> dict[str, dict]:
    """The model, the baselines and the two floors, in the order the table and the plot show them."""
    systems = {"model": dist["model"]} if "model" in dist else {}
    if "order_averaged" in dist:  # --option-order shuffled:K: each order's distribution, averaged per item
        systems["model, order-averaged"] = dist["order_averaged"]
    systems.update(dist.get("baselines", {}))
    floors = dist.get("floors", {})
    systems["sampling floor"] = floors.get("sampling", {})
    systems["human split-half floor"] = floors.get("human_split_half", {})
    return systems


def distribution_plots(run_dir: Path, out: dict, extras: dict) -> list[Path]:
    """Predicted vs human distributions for the biggest cells, a reliability diagram, metrics beside floors."""
    dist = out.get("distributional")
    if not dist:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    suffix = " (SYNTHETIC DATA)" if out.get("synthetic") else ""
    items, p = extras.get("items"), extras.get("p")
    if items is not None and len(items):
        cells = items.groupby(["country", "q_id"], observed=True).size().sort_values(ascending=False).head(6)
        fig, axes = plt.subplots(2, 3, figsize=(13, 8), squeeze=False, layout="constrained")
        for ax, (country, qid) in zip(axes.flat, cells.index):
            m = ((items["country"] == country) & (items["q_id"] == qid)).to_numpy()
            k = int(items["k"][m].max())
            human = np.bincount(items["truth"][m].astype(int), minlength=k)[:k] / m.sum()
            model = p[m, :k].mean(axis=0)
            x = np.arange(k)
            ax.bar(x - 0.2, human, 0.4, label="people (cell's answers)")
            ax.bar(x + 0.2, model, 0.4, label=f"model ({dist['readout']})")
            labels = list(items["options"][m].iloc[0])
            # Whole option names, wrapped; numbered instead when there are too many to fit side by side.
            ticks = [_wrap(o, 12, lines=3) for o in labels] if k <= 5 else [str(i + 1) for i in range(k)]
            ax.set_xticks(x, ticks, fontsize=7)
            iso = COUNTRY_BY_NAME[country].iso3 if country in COUNTRY_BY_NAME else str(country)[:12]
            ax.set_title(f"{iso} {qid} ({int(m.sum())} items)" + ("" if k <= 5 else "; options by number"),
                         fontsize=9)
            ax.set_ylim(0, 1)
        for ax in list(axes.flat)[len(cells):]:
            ax.axis("off")
        handles, names = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8)
        fig.suptitle("Predicted vs human answer distribution, biggest cells" + suffix)
        paths.append(save_figure(fig, run_dir / "distributions_by_cell.png"))
    cal = dist.get("calibration", {})
    if cal.get("bins"):
        bins = pd.DataFrame(cal["bins"])
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.bar((bins["lo"] + bins["hi"]) / 2, bins["accuracy"], width=bins["hi"] - bins["lo"], alpha=0.6,
               edgecolor="black", label="accuracy of the argmax")
        ax.plot(bins["confidence"], bins["accuracy"], "o-", color="C3", label="(mean confidence, accuracy)")
        ax.set_xlabel("confidence (probability of the argmax)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"Reliability, ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}" + suffix)
        paths.append(save_figure(fig, run_dir / "reliability.png"))
    frame = pd.DataFrame({name: {label: v.get(key, np.nan) for key, label in FLOORED}
                          for name, v in _systems_and_floors(dist).items()})
    if frame.notna().any().any():
        fig, ax = plt.subplots(figsize=(9, 4))
        frame.plot.bar(ax=ax, width=0.8, rot=0)
        ax.set_ylabel("lower is better")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title("Distributional metrics beside their floors" + suffix)
        paths.append(save_figure(fig, run_dir / "distributional_floors.png"))
    return paths


def _distributional_markdown(dist: dict) -> list[str]:
    lines = ["## Distributional", "",
             f"Readout: `{dist.get('readout', 'n/a')}`. Expected accuracy is the probability mass on the truth; RPS "
             f"the ranked probability score; \"vs profile\" compares with the answers of the profile's own "
             f"respondents (items with n >= 2); the floors are what a perfect sampler with as many draws as the "
             f"target holds (sampling) and one half of the same people against the other (human split-half) "
             f"score. Lower is better except for the accuracies.", ""]
    cols = [m.name for m in metric_registry.metrics(needs_probs=True)]
    frame = pd.DataFrame({name: {c: v.get(c, float("nan")) for c in cols}
                          for name, v in _systems_and_floors(dist).items()}).T
    frame.index.name = "system"
    lines += [markdown_table(frame.dropna(axis=1, how="all")), ""]
    d = dist.get("disagreement") or {}
    if d:
        lines += [f"On the {d['items']:,} H > 0 items (respondents of the profile disagree), the best any point "
                  f"answer can do against a random respondent is the majority share, {d['ceiling']:.3f}; the model's "
                  f"argmax reaches {d['argmax_respondent_acc']:.3f} and its distribution {d['respondent_acc']:.3f}.",
                  ""]
    elif "profile_items" in dist.get("model", {}) and not dist["model"]["profile_items"]:
        lines += ["_These items carry no respondent counts (the authors' release has none): the only real "
                  "distribution is the (country, question) cell's, used by the cell metrics._", ""]
    if dist.get("model", {}).get("unreadable_items"):
        lines += [f"_{dist['model']['unreadable_items']} item(s) had no readable answer and count as uniform._", ""]
    return lines


def _definitions_markdown(benchmark: bool | None = False) -> list[str]:
    """The registry's definitions (the peers' benchmark metrics too when the run has imported items)."""
    lines = ["## Metrics", "", "| metric | level | better | definition | source |", "|---|---|---|---|---|"]
    for m in metric_registry.metrics(benchmark=benchmark):
        cells = [f"`{m.name}`", m.level, "higher" if m.higher_is_better else "lower", m.description, m.source]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # a | in a definition
    return lines + [""]


def render_markdown(out: dict, tables: dict, plots: list[Path]) -> str:
    lines = ["# DVMap evaluation report", ""]
    if out.get("synthetic"):
        lines += [SYNTHETIC_BANNER, ""]
    cfg = out.get("run", {})
    if cfg.get("note"):
        lines += [f"> **Note.** {cfg['note']}", ""]
    for note in out.get("warnings", []) + out.get("replies", {}).get("warnings", []):
        lines += [f"> **Warning.** {note}", ""]
    if cfg:
        lines += [f"Model `{cfg.get('model')}` via `{cfg.get('backend')}`, {cfg.get('samples')} sample(s) per item at "
                  f"T = {cfg.get('temperature')}; data: {', '.join(map(str, cfg.get('data', [])))}.", ""]
    head = {}
    if "model" in out:
        head["model"] = out["model"]
    head.update(out.get("baselines", {}))
    if head:
        lines += ["## Headline (model beside the baselines)", ""]
        cols = [m.name for m in metric_registry.metrics(needs_probs=False)]
        frame = pd.DataFrame({k: {c: v.get(c, float("nan")) for c in cols} for k, v in head.items()}).T
        frame.index.name = "system"
        lines += [markdown_table(frame), ""]
        if "model" in out and "ci95" in out["model"]:
            ci = out["model"]["ci95"]
            lines += [f"Model 95% bootstrap CI: Acc [{ci['correct'][0]:.3f}, {ci['correct'][1]:.3f}], "
                      f"LC [{ci['lc'][0]:.3f}, {ci['lc'][1]:.3f}]. Acc uses the {out['model']['correctness']} rule; "
                      f"resolver Acc {out['model']['resolver_acc']:.3f}, the authors' rule (release) Acc "
                      f"{out['model']['release_acc']:.3f}; coverage {out['model']['coverage']:.1%}.", ""]
        if "imported" in out.get("model", {}):
            imp = out["model"]["imported"]
            lines += ["## Imported from the authors' evaluation", "",
                      f"Their `is_correct` column: Acc {imp['their_is_correct_acc']:.3f}; their rule recomputed "
                      f"here: {imp['release_recomputed_acc']:.3f}; our resolver: {out['model']['resolver_acc']:.3f}. "
                      f"Rows where their column and the recomputed rule disagree: {imp['disagreements']}"
                      + (f" (UIDs {', '.join(imp['disagreeing_uids'])})" if imp["disagreeing_uids"] else "") + ".",
                      ""]
    if "baselines_note" in out:
        lines += [f"_{out['baselines_note']}_", ""]
    for key, title in (("model_by_split", "By split"), ("model_by_country", "By country"),
                       ("model_by_q_id", "By question"), ("model_by_category", "By value domain")):
        if key in tables:
            lines += [f"## {title}", "", markdown_table(tables[key]), ""]
    if out.get("replies", {}).get("by_split"):
        lines += _replies_markdown(out["replies"])
    if "entropy_vs_accuracy" in out:
        lines += ["## Difficulty vs controversy", "",
                  f"Pearson r between a question's option entropy and accuracy: "
                  f"{out['entropy_vs_accuracy']['pearson_r']:.3f} (paper: -0.857).", ""]
    if "flip" in out:
        f = out["flip"]
        lines += ["## Robustness: value flip rate", "",
                  f"Inverting {f['attribute']} with the other attributes fixed changes the prediction in "
                  f"{f['flip_rate']:.1%} of {f['pairs']} pairs (pairs where both sides gave a resolvable answer).",
                  "", markdown_table(pd.DataFrame(f["by_category"], columns=["category", "flip_rate", "pairs"])
                             .set_index("category")), ""]
    if "distributional" in out:
        lines += _distributional_markdown(out["distributional"])
    if "option_order" in out:
        lines += O.order_markdown(out["option_order"])
    if "temperature_calibration" in out:
        lines += calibration_markdown(out["temperature_calibration"])
    if out.get("benchmarks"):
        lines += benchmark_markdown(out["benchmarks"])
    lines += _definitions_markdown(benchmark=None if out.get("benchmarks") else False)
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    return "\n".join(lines)
