"""``dvmap analyze semantic``: the paper's appendix analyses (cross-value accuracy gain vs semantic distance)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import non_negative_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("analyze", help="the paper's appendix analyses")
    an = parser.add_subparsers(dest="analysis", required=True)
    se = an.add_parser("semantic", help="cross-value accuracy gain vs semantic distance (Appendix J, Table 12)")
    se.add_argument("--train", required=True, type=Path, help="the training split (its questions)")
    se.add_argument("--cross-value", required=True, type=Path, help="the cross-value split (the unseen questions)")
    se.add_argument("--runs", required=True, type=Path, nargs=2, metavar=("BASE", "TRAINED"),
                    help="two run folders evaluated on the cross-value split")
    se.add_argument("--embedder", default="sentence-transformers/all-MiniLM-L6-v2",
                    help="sentence-transformers model, local folder or hub id (the paper names none)")
    se.add_argument("--out", required=True, type=Path, help="folder for semantic.json and the scatter plot")
    se.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap draws over questions")
    se.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def run(args: argparse.Namespace) -> int:
    return run_semantic(args)  # the only analysis so far; dispatch on args.analysis when a second one comes


def run_semantic(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.semantic import analyze_semantic

    out = analyze_semantic(args.train, args.cross_value, args.runs, args.out, embedder=args.embedder,
                           bootstrap=args.bootstrap, seed=args.seed)
    for q in out["questions"]:
        print(f"{q['q_id']:>6}: d_min {q['d_min']:.3f} (nearest {q['nearest']}), d_avg {q['d_avg']:.3f}, "
              f"gain {q['gain']:+.3f} over {q['items']} items")
    for col in ("d_min", "d_avg"):
        c = out[col]
        ci = c.get("pearson_ci95", [float("nan")] * 2)
        print(f"{col}: Pearson r {c['pearson']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}], Spearman {c['spearman']:+.3f} "
              f"over {c['n']} questions (paper: r = {out['paper_r'][col]})")
    print(f"semantic -> {Path(args.out) / 'semantic.json'}, semantic_distance_vs_gain.png")
    return 0
