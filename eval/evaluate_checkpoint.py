"""Evaluate a verl FSDP checkpoint end to end: merge it into a Hugging Face folder, then `dvmap eval` on the
triple-generalization benchmark with the baselines from the training split.

    python eval/evaluate_checkpoint.py CHECKPOINT DATA_DIR OUT [--backend vllm] [any `dvmap eval` option ...]

CHECKPOINT: the run's checkpoint folder (latest step), .../global_step_N or .../global_step_N/actor.
DATA_DIR: the output folder of `dvmap prepare`. The merged model goes to OUT/merged_model, the run to OUT.

OUT/merged_model/dvmap_checkpoint_source.json records what was merged (actor folder, step, every file's size and
time). A rerun reuses the merged model only when the checkpoint is the same; a changed checkpoint is merged again,
unless OUT already holds predictions of the old one (then it is refused: use another OUT, the runs would mix).
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from dvmap_verl.training.checkpoints import checkpoint_source, merge_fsdp_checkpoint
from dvmap_verl.cli import main as dvmap

BENCHMARK = ("cross_demographic.parquet", "cross_country.parquet", "cross_value.parquet")
SOURCE = "dvmap_checkpoint_source.json"


def _describe(source: dict) -> str:
    return f"{source.get('path')} (step {source.get('step')})"


def ensure_merged(checkpoint: Path, out: Path) -> Path:
    """OUT/merged_model for ``checkpoint``: reused when its recorded source is the same, merged (again) otherwise,
    into a staging folder that replaces the old one whole. Raises ValueError when the checkpoint changed under a
    run that already holds predictions of the old one."""
    model = out / "merged_model"
    source = checkpoint_source(checkpoint)
    recorded = None
    if (model / SOURCE).exists():
        recorded = json.loads((model / SOURCE).read_text())
    if recorded == source and (model / "config.json").exists():
        print(f"merged model: {model} (reused: {_describe(source)} unchanged)")
        return model
    if model.exists() and (out / "predictions.jsonl").exists():
        was = _describe(recorded) if recorded else "an unrecorded checkpoint"
        raise ValueError(f"{out}: holds predictions of {was}; the checkpoint is now {_describe(source)}. "
                         f"Evaluate it into another OUT (the two runs would mix)")
    if model.exists():
        print(f"checkpoint changed ({_describe(recorded) if recorded else 'no source recorded'} -> "
              f"{_describe(source)}): merging again")
    stage = out / f".merged_model.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        merge_fsdp_checkpoint(checkpoint, stage)
        (stage / SOURCE).write_text(json.dumps(source, indent=2) + "\n")
        if model.exists():
            shutil.rmtree(model)
        os.replace(stage, model)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"merged model: {model} (from {_describe(source)})")
    return model


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
    try:
        model = ensure_merged(args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    train = ["--train", str(args.data_dir / "train.parquet")] if (args.data_dir / "train.parquet").exists() else []
    return dvmap(["eval", "--backend", args.backend, "--model", str(model), "--data", *map(str, data),
                  "--out", str(args.out), *train, *rest])


if __name__ == "__main__":
    sys.exit(main())
