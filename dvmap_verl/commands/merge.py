"""``dvmap merge``: a verl FSDP checkpoint as a Hugging Face model folder."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    mg = subparsers.add_parser("merge", help="a verl FSDP checkpoint -> a Hugging Face model folder (verl's merger)")
    mg.add_argument("checkpoint", help="checkpoints/<project>/<experiment> (latest step), global_step_N or its actor")
    mg.add_argument("target", help="output folder")
    mg.add_argument("--trust-remote-code", action="store_true", help="for models with custom code")
    return mg


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.training.checkpoints import merge_fsdp_checkpoint

    print(f"merged Hugging Face model -> {merge_fsdp_checkpoint(args.checkpoint, args.target, args.trust_remote_code)}")
    return 0
