"""The peer benchmarks' own metrics against direct computations (scipy, as the sources used), with worked values;
their floors; and every benchmark imported -> dvmap eval (HF backend, tiny local model; logprob and sampling
readouts) -> dvmap report, with the report's numbers recomputed here from predictions.jsonl."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

sys.path.insert(0, str(Path(__file__).parent))
import benchmark_files as B  # noqa: E402

from dvmap_verl.cli import main  # noqa: E402
from dvmap_verl.evaluation import benchmark_metrics as BM  # noqa: E402
from dvmap_verl.evaluation.metric_registry import get_metric  # noqa: E402


def rows(*vectors, width=16):
    out = np.zeros((len(vectors), width))
    for i, v in enumerate(vectors):
        out[i, :len(v)] = v
    return out


def items_with(ordinal, is_ordinal=True, scale=(float("nan"), float("nan"))):
    return pd.DataFrame({"ordinal": [ordinal], "is_ordinal": [is_ordinal], "scale_min": [scale[0]],
                         "scale_max": [scale[1]]})


def test_goqa_similarity_is_one_minus_scipy_jensenshannon_natural_log():
    p, t = rows([1, 0], [0.5, 0.5]), rows([0, 1], [0.9, 0.1])
    got = BM.js_similarity(p, t, np.array([2, 2]))
    # Disjoint: JSD = ln 2 (natural log), so the similarity is 1 - sqrt(ln 2) = 0.167445.
    assert got[0] == pytest.approx(1 - math.sqrt(math.log(2))) and got[0] == pytest.approx(0.167445, abs=1e-6)
    assert got[1] == pytest.approx(1 - jensenshannon([0.5, 0.5], [0.9, 0.1]))
    # Not base 2 (which would give 0 for disjoint distributions).
    assert got[0] != pytest.approx(1 - jensenshannon([1, 0], [0, 1], base=2))
    m = get_metric("goqa_similarity")
    assert m.higher_is_better and "natural log" in m.description and m.level == "item"


def test_opinionqa_representativeness_with_out_of_order_ordinals():
    # TRUSTB: options Trust, Distrust, Neither at ordinal 1, 2, 1.5. Sorted: Trust, Neither, Distrust.
    # p = 1/3 each, t = [2/9, 3/9, 4/9]: CDFs at 1 and 1.5: (1/3, 2/3) vs (2/9, 6/9): W1 = 1/9 * 0.5 = 1/18.
    p, t = rows([1 / 3, 1 / 3, 1 / 3]), rows([2 / 9, 3 / 9, 4 / 9])
    items = items_with([1.0, 2.0, 1.5])
    got = BM.opinionqa_representativeness(p, t, np.array([3]), items)[0]
    assert got == pytest.approx(1 - 1 / 18)
    direct = wasserstein_distance([1, 2, 1.5], [1, 2, 1.5], [1 / 3] * 3, [2 / 9, 3 / 9, 4 / 9]) / (2 - 1)
    assert got == pytest.approx(1 - direct)
    # Degenerate [1, 1, 1, 1] (max WD 0 in the source: a division by zero) and non-ordinal items: nan.
    deg = BM.opinionqa_representativeness(rows([0.25] * 4), rows([1, 0, 0, 0]), np.array([4]),
                                          items_with([1.0] * 4, is_ordinal=False))
    assert np.isnan(deg[0])
    assert get_metric("opinionqa_representativeness").higher_is_better


def test_subpop_ordinal_emd_drops_non_ordinal_options():
    # livinst: ordinal [1, 2, -1] (stored as nan). t = [0.2, 0.5 | 0.3] -> [2/7, 5/7]; p uniform -> [1/2, 1/2].
    # EMD = |1/2 - 2/7| * 1 / (2 - 1) = 3/14.
    p, t = rows([1 / 3, 1 / 3, 1 / 3]), rows([0.2, 0.5, 0.3])
    got = BM.subpop_ordinal_emd(p, t, np.array([3]), items_with([1.0, 2.0, float("nan")]))[0]
    assert got == pytest.approx(3 / 14)
    assert got == pytest.approx(wasserstein_distance([1, 2], [1, 2], [0.5, 0.5], [2 / 7, 5 / 7]))
    assert not get_metric("subpop_ordinal_emd").higher_is_better


def test_wvb_w1_on_rescaled_scores_matches_scipy_on_sample_lists():
    # Human scores 2 and 10, model scores 1, 1, 5 on a 1..10 scale; WorldValuesBench rescales (s - 1) / 9 and
    # takes scipy's wasserstein_distance on the sample lists. By hand: (2/3 * 1 + 1/6 * 3 + 1/2 * 5) / 9 = 0.407407.
    human, model = [2, 10], [1, 1, 5]
    direct = wasserstein_distance([(s - 1) / 9 for s in model], [(s - 1) / 9 for s in human])
    p = np.zeros(10)
    p[0], p[4] = 2 / 3, 1 / 3
    t = np.zeros(10)
    t[1], t[9] = 0.5, 0.5
    got = BM.wvb_w1(rows(p), rows(t), np.array([10]), items_with([float(v) for v in range(1, 11)],
                                                                  scale=(1.0, 10.0)))[0]
    assert got == pytest.approx(direct) and got == pytest.approx((2 / 3 + 0.5 + 2.5) / 9)


def test_floors_uniform_and_sampling_with_the_draw_count():
    t, k = rows([0.5, 0.5]), np.array([2])
    # One draw per item: the sample is one-hot, so TV is 0.5 and the similarity that of [1, 0] vs [0.5, 0.5].
    fl = BM.benchmark_floors(t, np.array([1.0]), k, None, BM.total_variation, draws=50)
    assert fl["sampling"] == pytest.approx(0.5) and fl["uniform"] == pytest.approx(0.0)
    fl = BM.benchmark_floors(t, np.array([1.0]), k, None, BM.js_similarity, draws=50)
    assert fl["sampling"] == pytest.approx(1 - jensenshannon([1, 0], [0.5, 0.5]))
    # A one-hot target: every draw equals it (similarity 1), uniform is [0.5, 0.5] against [1, 0].
    fl = BM.benchmark_floors(rows([1, 0]), np.array([30.0]), k, None, BM.js_similarity, draws=5)
    assert fl["sampling"] == pytest.approx(1.0) and fl["uniform"] == pytest.approx(1 - jensenshannon([.5, .5], [1, 0]))
    assert fl["simulations"] == 5 and "draws" not in fl  # the benchmark's draws per item are n (30 here)


# ------------------------------------------------------------------------------------------------ end to end

OWN = {"globalopinionqa": "goqa_similarity", "opinionqa": "opinionqa_representativeness",
       "subpop": "subpop_ordinal_emd", "worldvaluesbench": "wvb_w1"}
DIRECT = {  # the source's computation of one item, from scipy
    "goqa_similarity": lambda p, t, o, lo, hi: 1 - jensenshannon(p, t),
    "opinionqa_representativeness": lambda p, t, o, lo, hi: 1 - wasserstein_distance(o, o, p, t) / (o.max() - o.min()),
    "subpop_ordinal_emd": lambda p, t, o, lo, hi: wasserstein_distance(o, o, p, t) / (o.max() - o.min()),
    "wvb_w1": lambda p, t, o, lo, hi: wasserstein_distance((o - lo) / (hi - lo), (o - lo) / (hi - lo), p, t),
}


def direct_mean(metric: str, items: pd.DataFrame, probs: dict[int, np.ndarray]) -> tuple[float, int]:
    vals = []
    for r in items.itertuples():
        o = np.asarray(r.ordinal, dtype=float)
        p, t = probs[r.item], np.asarray(r.target, dtype=float)
        if metric != "goqa_similarity":
            if not r.is_ordinal:
                continue
            keep = ~np.isnan(o)
            o, p, t = o[keep], p[keep] / p[keep].sum(), t[keep] / t[keep].sum()
        vals.append(DIRECT[metric](p, t, o, r.scale_min, r.scale_max))
    return float(np.mean(vals)), len(vals)


B_TEMPLATES = {"globalopinionqa": "default", "opinionqa": "qa", "subpop": "qa", "worldvaluesbench": "default"}
WRITERS = {"globalopinionqa": lambda d: B.write_goqa(d), "opinionqa": B.write_opinionqa,
           "subpop": B.write_subpop, "worldvaluesbench": B.write_wvb}


@pytest.mark.parametrize("bench", sorted(OWN))
def test_import_eval_report_with_logprob_and_sampling(bench, tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "items"
    assert main(["import-benchmark", bench, "--input", str(WRITERS[bench](tmp_path / "in")), "--out",
                 str(data)]) == 0
    parquet = str(next(data.glob("*.parquet")))
    direct: dict[str, dict[str, float]] = {}
    for readout, samples in (("logprob", 1), ("sampling", 2)):
        run = tmp_path / readout
        assert main(["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", parquet, "--out",
                     str(run), "--readout", readout, "--samples", str(samples), "--max-tokens", "4",
                     "--bootstrap", "0", "--quiet", "--no-report"]) == 0
        assert main(["report", str(run), "--bootstrap", "0"]) == 0
        metrics = json.loads((run / "metrics.json").read_text())
        # The prompt format is in the items file's name, which run.json keeps.
        assert json.loads((run / "run.json").read_text())["config"]["data"] == [parquet]
        assert Path(parquet).name == f"{bench}_{B_TEMPLATES[bench]}.parquet"
        section = metrics["benchmarks"]["by_benchmark"][bench]
        items = pd.read_parquet(run / "items.parquet")
        preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
        probs: dict[int, np.ndarray] = {}
        if readout == "logprob":
            for rec in preds:
                probs[rec["item"]] = np.asarray(rec["probs"])
        else:  # the parsed samples' shares; an item with none parsed counts as uniform (the report's rule)
            for i, r in items.iterrows():
                picks = [rec["pred"] for rec in preds if rec["item"] == r["item"] and rec["pred"] >= 0]
                k = len(r["options"])
                probs[r["item"]] = np.bincount(picks, minlength=k) / len(picks) if picks else np.full(k, 1 / k)
        own = section["metrics"][OWN[bench]]
        value, scored = direct_mean(OWN[bench], items, probs)
        assert own["own"] and own["value"] == pytest.approx(value, abs=1e-6) and own["scored_items"] == scored
        assert own["not_computed"] == len(items) - scored
        tv = float(np.mean([0.5 * np.abs(probs[r.item] - np.asarray(r.target)).sum() for r in items.itertuples()]))
        assert section["metrics"]["total_variation"]["value"] == pytest.approx(tv, abs=1e-6)
        direct[readout] = {OWN[bench]: value, "total_variation": tv}
        assert "## Peer benchmarks" in (run / "report.md").read_text()
        assert metrics["distributional"]["model"]["profile_items"] >= 1
    # Both runs hold the same items (split, profile_id, q_id): compare pairs all of them.
    assert main(["compare", str(tmp_path / "logprob"), str(tmp_path / "sampling"), "--out", str(tmp_path / "cmp"),
                 "--bootstrap", "0"]) == 0
    out = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert out["differences"][0]["shared_items"] == len(items)
    # compare shows the peer metrics too: the paired difference (sampling - logprob) on the same items is the
    # difference of the scipy means above (both runs score the same items)
    (peer,) = out["peer_benchmarks"]["differences"]
    assert peer["benchmark"] == bench and peer["shared_items"] == len(items)
    for name in (OWN[bench], "total_variation"):
        assert peer[f"d_{name}"] == pytest.approx(direct["sampling"][name] - direct["logprob"][name], abs=1e-6)
    assert "## Peer benchmarks" in (tmp_path / "cmp" / "compare.md").read_text()


def _imported_items(tmp_path, capsys) -> str:
    """A GlobalOpinionQA file imported through the console: the path of its parquet (console output dropped)."""
    data = tmp_path / "items"
    assert main(["import-benchmark", "globalopinionqa", "--input", str(WRITERS["globalopinionqa"](tmp_path / "in")),
                 "--out", str(data)]) == 0
    capsys.readouterr()
    return str(next(data.glob("*.parquet")))


def test_a_dvmap_template_on_imported_items_is_refused_in_one_line(tiny_model_dir, tmp_path, capsys):
    # Imported items carry no DVMap profile: re-rendering them with a persona template cannot work; exit 2, no run.
    parquet = _imported_items(tmp_path, capsys)
    assert main(["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", parquet, "--out",
                 str(tmp_path / "run"), "--template", "paper", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dvmap: error: --template paper: these items (") \
        and "no DVMap profile attributes" in err[0]
    assert not (tmp_path / "run").exists()


def test_flip_on_imported_items_is_refused_in_one_line(tiny_model_dir, tmp_path, capsys):
    # --flip swaps a DVMap profile attribute: imported items have none; exit 2 with one line, no run (was a KeyError)
    parquet = _imported_items(tmp_path, capsys)
    assert main(["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", parquet, "--out",
                 str(tmp_path / "run"), "--flip", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dvmap: error: --flip Income Bracket: these items (") \
        and "no DVMap profile attributes" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_metric_of_the_wrong_shape_is_named_with_its_module():
    from dvmap_verl.errors import EnvironmentProblem
    from dvmap_verl.evaluation.metric_registry import Metric
    from dvmap_verl.evaluation.metric_values import Rows, row_values

    def two_columns(p, t, k, items):
        return np.zeros((len(k), 2))

    m = Metric("bad_shape", two_columns, "item", False, False, "returns (n, 2)", "")
    rows = Rows(np.zeros((3, 16)), np.zeros((3, 16)), np.array([2, 2, 2]), pd.DataFrame(index=range(3)), np.ones(3))
    with pytest.raises(EnvironmentProblem, match=rf"metric 'bad_shape' \(its function in {__name__}; source: not "
                                                 r"given\) returned shape \(3, 2\) for 3 item rows; it must return 3"):
        row_values(m, rows)


def test_a_run_mixing_dvmap_and_imported_items_is_reported(synthetic_data, tmp_path):
    # eval --data a.parquet b.parquet may mix DVMap's own items (no target, no benchmark) with imported ones: the peer
    # section covers the imported items alone, the rest of the report all of them (a crash before: None targets).
    from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run

    data = tmp_path / "items"
    assert main(["import-benchmark", "globalopinionqa", "--input", str(WRITERS["globalopinionqa"](tmp_path / "in")),
                 "--out", str(data)]) == 0
    goqa = next(data.glob("*.parquet"))
    dvmap = synthetic_data(3000) / "val.parquet"
    run = tmp_path / "run"
    items = prepare_run(run, EvalConfig(backend="none", model="m", data=[str(dvmap), str(goqa)]))
    imported = items["benchmark"].map(lambda b: isinstance(b, str) and bool(b)).to_numpy(dtype=bool)
    assert 0 < imported.sum() < len(items)
    with open(run / PREDICTIONS, "w") as fh:  # every item answers its first option: probability 1 there
        for r in items.itertuples():
            k = len(r.options)
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": f"<answer>{r.options[0]}</answer>",
                                 "answer": r.options[0], "pred": 0, "probs": [1.0] + [0.0] * (k - 1),
                                 "readout": "logprob"}) + "\n")
    assert main(["report", str(run), "--bootstrap", "0"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    section = metrics["benchmarks"]["by_benchmark"]["globalopinionqa"]
    assert section["items"] == int(imported.sum())
    # By hand: p is the first option's point mass, so TV to the target is 1 - target[0] per item.
    sub = items[imported]
    tv = np.mean([1 - (np.asarray(t, float) / np.sum(t))[0] for t in sub["target"]])
    assert section["metrics"]["total_variation"]["value"] == pytest.approx(tv)
    assert metrics["model"]["n_items"] == len(items)
