"""Metrics, baselines and the report over a paper-sized benchmark: 21,553 items x 8 samples (SYNTHETIC data).

    python benchmarks/eval_bench.py [--items 21553] [--samples 8] [--workdir DIR]

Setup (not timed): a synthetic WVS file is prepared, its benchmark splits are stacked to the paper's 21,553 items,
and a predictions.jsonl of realistic ~1.3 KB completions is written (70% resolvable, some unparsable). Timed:
`dvmap report` as a user runs it (read predictions, metrics with 1,000 bootstrap draws, the four baselines fitted on
the training split, random-forest attribute importance, the distributional section with its floors, plots), then
the distributional metrics and floors alone, then `dvmap compare` of two such runs (1,000 paired
bootstrap draws, overall and per country and question, the baselines, plots).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from reward_bench import SENTENCES  # noqa: E402


def setup(work: Path, n_items: int, samples: int, seed: int = 0) -> Path:
    from dvmap_verl.data import synth
    from dvmap_verl.evaluation.evaluate import EvalConfig, prepare_run
    from dvmap_verl.data.prepare import prepare_wvs

    data = work / "data"
    if not (data / "stats.json").exists():
        synth.write(synth.generate(97220, seed=0), work / "wvs.csv")
        prepare_wvs(work / "wvs.csv", data, quiet=True)
    run = work / (f"run_{n_items}x{samples}" + ("" if seed == 0 else f"_seed{seed}"))
    if (run / "predictions.jsonl").exists():
        return run
    files = [str(data / f) for f in ("cross_demographic.parquet", "cross_country.parquet", "cross_value.parquet",
                                     "val.parquet")]
    config = EvalConfig(backend="none", model="synthetic-predictions", data=files, samples=samples,
                        limit=n_items, train=str(data / "train.parquet"))
    items = prepare_run(run, config)
    rng = np.random.default_rng(seed)
    with open(run / "predictions.jsonl", "w") as fh:
        for item, options, truth in zip(items["item"], items["options"], items["truth"]):
            for s in range(samples):
                body = " ".join(rng.choice(SENTENCES, 12))
                r = rng.random()
                pred = int(truth) if r < 0.45 else int(rng.integers(len(options))) if r < 0.9 else -1
                answer = options[pred] if pred >= 0 else "I cannot say"
                rec = {"item": int(item), "sample": s, "completion": f"<reasoning>\n{body}\n</reasoning>\n"
                       f"<answer>\n{answer}\n</answer>", "answer": answer, "pred": pred}
                fh.write(json.dumps(rec) + "\n")
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=21553)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmap_eval_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run = setup(work, args.items, args.samples)
    size = (run / "predictions.jsonl").stat().st_size / 1e6
    print(f"setup {time.perf_counter() - t0:.1f}s: {args.items:,} items x {args.samples} samples "
          f"({size:.0f} MB of predictions) in {run}")

    from dvmap_verl.evaluation.report import build_report

    t0 = time.perf_counter()
    out = build_report(run, bootstrap=1000)
    dt = time.perf_counter() - t0
    m = out["model"]
    print(f"report: {dt:.1f}s (goal < 30 s) - {m['n_samples']:,} predictions, acc {m['acc']:.3f}, "
          f"{len(out['baselines'])} baselines, {len(out['plots'])} plots")
    stages = {}
    from dvmap_verl.evaluation import metrics as M
    from dvmap_verl.evaluation.evaluate import read_predictions

    t = time.perf_counter()
    preds = read_predictions(run / "predictions.jsonl")
    stages["read predictions"] = time.perf_counter() - t
    items = pd.read_parquet(run / "items.parquet")
    t = time.perf_counter()
    scored = M.point_scores(preds.merge(items.drop(columns="messages"), on="item"))
    M.summary(scored, bootstrap=1000)
    stages["metrics + bootstrap"] = time.perf_counter() - t
    from dvmap_verl.evaluation import distributional as D

    t = time.perf_counter()
    dist, _ = D.distributional_report(scored, {})
    stages["distributional metrics + floors (20 draws)"] = time.perf_counter() - t
    print("  " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
    fl = dist["floors"]
    print(f"  distributional: expected acc {dist['model']['expected_acc']:.3f}, RPS vs profile "
          f"{dist['model']['rps_profile']:.3f} on {dist['model']['profile_items']:,} items (n >= 2); floors: "
          f"sampling {fl['sampling']['rps_profile']:.3f}, human split-half {fl['human_split_half']['rps_profile']:.3f}"
          f"; ECE {dist['calibration']['ece']:.3f}")

    from dvmap_verl.evaluation.compare import compare_runs

    other = setup(work, args.items, args.samples, seed=1)  # a second model's run on the same items
    t0 = time.perf_counter()
    out = compare_runs([run, other], work / "compare", bootstrap=1000)
    dt = time.perf_counter() - t0
    d = out["differences"][0]
    print(f"compare: {dt:.1f}s (goal < 30 s) - two runs of {d['shared_items']:,} shared items, 1,000 paired draws "
          f"overall, per country and per question; Acc difference {d['d_acc']:+.3f} "
          f"[{d['d_acc_lo']:+.3f}, {d['d_acc_hi']:+.3f}]")


if __name__ == "__main__":
    main()
