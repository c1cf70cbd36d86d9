"""The report's plots, rendered at their default size: no two text labels overlap, every bar says its value and n,
option names are whole (wrapped, not cut), training steps are whole numbers."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.evaluation import report as R
from dvmap_verl.evaluation.evaluate import DEFAULT_FLIP, PREDICTIONS, EvalConfig, prepare_run

CHECKED = ("distributions_by_cell.png", "entropy_vs_accuracy.png", "flip_rate_by_domain.png")


def texts_of(fig) -> list:
    """Every visible, non-empty text artist of a drawn figure: titles, axis labels, tick labels, annotations,
    legend entries and the figure's own title and legends."""
    found = [fig._suptitle] if fig._suptitle else []
    for legend in fig.legends:
        found += legend.get_texts()
    for ax in fig.axes:
        found += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        found += ax.get_xticklabels() + ax.get_yticklabels()
        if ax.get_legend():
            found += ax.get_legend().get_texts()
    return [t for t in found if t is not None and t.get_visible() and t.get_text().strip()]


def overlaps(fig) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts_of(fig)]
    return [(a, b) for (a, ba), (b, bb) in combinations(boxes, 2) if ba.overlaps(bb)]


@pytest.fixture(scope="module")
def rendered(synthetic_data, tmp_path_factory) -> dict:
    """A run on synthetic items with the income flip, answers fixed by rule, its report built; each figure is
    checked for overlapping text as it is saved (at the size the report uses)."""
    data = synthetic_data(3000, seed=8)
    run = tmp_path_factory.mktemp("plots") / "run"
    config = EvalConfig(backend="none", model="rule", data=[str(data / "cross_demographic.parquet")], limit=300,
                        flip_attribute=DEFAULT_FLIP[0], flip_map=DEFAULT_FLIP[1], train=str(data / "train.parquet"))
    items = prepare_run(run, config)
    with open(run / PREDICTIONS, "w") as fh:
        for r in items.itertuples():  # the first option always: flipped twins answer the same, a flip rate of 0
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": f"<answer>{r.options[0]}</answer>",
                                 "answer": r.options[0], "pred": 0}) + "\n")
    found: dict = {}
    real_save = R.save_figure

    def checking_save(fig, path):
        found[Path(path).name] = {"overlaps": overlaps(fig), "texts": [t.get_text() for t in texts_of(fig)],
                                  "size": tuple(fig.get_size_inches())}
        return real_save(fig, path)

    mp = pytest.MonkeyPatch()
    mp.setattr(R, "save_figure", checking_save)
    try:
        out = R.build_report(run, bootstrap=0, importance=False)  # the forest plot is not checked here
    finally:
        mp.undo()
    return {"figures": found, "out": out, "items": items, "run": run}


@pytest.mark.parametrize("name", CHECKED)
def test_no_text_label_overlaps(rendered, name):
    assert name in rendered["figures"], sorted(rendered["figures"])
    assert rendered["figures"][name]["overlaps"] == []


def test_flip_bars_state_value_and_n(rendered):
    flip = rendered["out"]["flip"]
    texts = rendered["figures"]["flip_rate_by_domain.png"]["texts"]
    items = rendered["items"]
    twins = items[items["counterfactual"]]
    # Worked from the items: every original with a Low/High income twin is a pair; all answers are option 0.
    pairs = twins.merge(items[~items["counterfactual"]][["item", "category"]], left_on="pair", right_on="item")
    expected = pairs.groupby("category_y").size()
    assert flip["pairs"] == len(twins) == expected.sum()
    for category, n in expected.items():
        assert f"0.000 (n = {n})" in texts, (category, texts)


def test_option_names_are_whole(rendered):
    texts = rendered["figures"]["distributions_by_cell.png"]["texts"]
    joined = {t.replace("\n", " ") for t in texts}
    # Options of the importance questions, the longest cut at 14 characters before: now whole.
    assert "Not at all important" in joined or any(t.isdigit() for t in joined)
    assert not any(t.endswith("...") for t in joined)


def test_curves_step_ticks_are_whole_numbers(monkeypatch, tmp_path):
    from dvmap_verl.training import curves

    seen = {}

    def capture(fig, path):
        fig.canvas.draw()
        seen["ticks"] = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
        seen["overlaps"] = overlaps(fig)
        import matplotlib.pyplot as plt
        plt.close(fig)

    monkeypatch.setattr(curves, "save_figure", capture)
    frame = pd.DataFrame({"step": [1, 2, 3], "acc": [0.2, 0.3, 0.5], "format": [0.5, 0.7, 0.9],
                          "parsed": [0.6, 0.8, 0.95], "likert": [0.4, 0.5, 0.6], "response_chars": [900, 700, 650]})
    curves._plot(frame, tmp_path / "curves.png")
    assert seen["ticks"] and all(t.lstrip("−-").isdigit() for t in seen["ticks"]), seen["ticks"]
    assert seen["overlaps"] == []


def test_wrap_keeps_whole_words():
    assert R._wrap("Not at all important", 12) == "Not at all\nimportant"
    assert R._wrap("Agree", 12) == "Agree"
    assert R._wrap("SOCIAL VALUES, ATTITUDES & STEREOTYPES", 14) == "SOCIAL VALUES,\nATTITUDES &..."


def test_crowded_labels_are_left_out_not_piled():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys = np.r_[np.full(6, 0.5), 0.1], np.r_[np.full(6, 0.5), 0.9]  # six labels on one point, one alone
    ax.scatter(xs, ys)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    hidden = R._label_points(fig, ax, xs, ys, [f"Q{i}" for i in range(7)])
    assert hidden == ["Q4", "Q5"]  # four spots around the shared point: four of its six labels fit, the lone one too
    assert len(ax.texts) == 5 and overlaps(fig) == []
    plt.close(fig)
