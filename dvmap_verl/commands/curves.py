"""``dvmap curves``: per-step training curves from verl rollout dumps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    cu = subparsers.add_parser("curves",
                               help="per-step training curves from verl's rollout dumps (trainer.rollout_data_dir)")
    cu.add_argument("rollout_dir", type=Path, help="the run's trainer.rollout_data_dir (<step>.jsonl files)")
    cu.add_argument("--out", type=Path, help="folder for curves.csv and curves.png (default ROLLOUT_DIR/curves)")
    cu.add_argument("--tensorboard", type=Path,
                    help="TensorBoard folder for the scalars, e.g. verl's tensorboard_log/<project>/<experiment>")
    cu.add_argument("--tokenizer", help="model or tokenizer folder, to report response length in tokens")
    return cu


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.training.curves import build_curves

    out = args.out or args.rollout_dir / "curves"
    frame = build_curves(args.rollout_dir, out, tensorboard=args.tensorboard, tokenizer_path=args.tokenizer)
    for why in frame.loc[frame["skipped_lines"] > 0, "skipped_why"]:
        print(f"NOTE: {why}", file=sys.stderr)
    last = frame.iloc[-1]
    print(f"{len(frame)} step(s); last step {int(last['step'])}: acc {last['acc']:.3f}, format {last['format']:.3f}, "
          f"parsed {last['parsed']:.3f}, likert {last['likert']:.3f}")
    print(f"curves -> {out / 'curves.csv'}, {out / 'curves.png'}; TensorBoard scalars (dvmap/*) -> "
          f"{args.tensorboard or out / 'tensorboard'}")
    return 0
