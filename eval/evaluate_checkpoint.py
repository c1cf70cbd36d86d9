"""Evaluate a verl FSDP checkpoint end to end: merge it into a Hugging Face folder, then `dvmap eval` on the
triple-generalization benchmark with the baselines from the training split.

    python eval/evaluate_checkpoint.py CHECKPOINT DATA_DIR OUT [--backend vllm] [any `dvmap eval` option ...]

CHECKPOINT: the run's checkpoint folder (latest step), .../global_step_N or .../global_step_N/actor.
DATA_DIR: the output folder of `dvmap prepare`. The merged model goes to OUT/merged_model, the run to OUT.
"""

import argparse
import sys
from pathlib import Path

from dvmap_verl.training.checkpoints import merge_fsdp_checkpoint
from dvmap_verl.cli import main as dvmap

BENCHMARK = ("cross_demographic.parquet", "cross_country.parquet", "cross_value.parquet")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--backend", default="vllm", choices=["vllm", "hf", "openai"])
    args, rest = ap.parse_known_args(argv)
    data = [args.data_dir / f for f in BENCHMARK if (args.data_dir / f).exists()]
    if not data:  # say why they are absent and which import makes them (a release clone without git LFS files...)
        from dvmap_verl.data.release import MissingSplitError, require_split

        try:
            require_split(args.data_dir, Path(BENCHMARK[0]).stem, "evaluate_checkpoint.py")
        except MissingSplitError as e:
            print(f"error: none of {', '.join(BENCHMARK)} in {args.data_dir}; {e}", file=sys.stderr)
        return 2
    model = args.out / "merged_model"
    if not (model / "config.json").exists():
        try:
            merge_fsdp_checkpoint(args.checkpoint, model)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(f"merged model: {model}")
    train = ["--train", str(args.data_dir / "train.parquet")] if (args.data_dir / "train.parquet").exists() else []
    return dvmap(["eval", "--backend", args.backend, "--model", str(model), "--data", *map(str, data),
                  "--out", str(args.out), *train, *rest])


if __name__ == "__main__":
    sys.exit(main())
