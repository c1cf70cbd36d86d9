"""``dvmap doctor``: check GPUs, versions, data, model and prompt lengths before training."""

from __future__ import annotations

import argparse

from dvmap_verl.commands.common import finite_in, non_negative_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    dr = subparsers.add_parser("doctor", help="check GPUs, versions, data, model and prompt lengths before training",
                        description="Takes the training command's arguments: dvmap doctor +recipe=NAME [overrides]")
    dr.add_argument("overrides", nargs="+", help="+recipe=NAME and any Hydra overrides, as for main_ppo")
    dr.add_argument("--gpus", type=non_negative_int, help="GPUs to assume visible (default: ask torch)")
    dr.add_argument("--gpu-memory-gb", type=finite_in(0, 4096, low_open=True, unit="GiB"), metavar="GIB",
                    help="memory of one GPU in GiB for the memory check (default: the visible GPUs'; an '80 GB' "
                         "A100/H100 has 80)")
    return dr


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.training.doctor import blockers, run_doctor

    checks = run_doctor(args.overrides, visible_gpus=args.gpus, gpu_memory_gb=args.gpu_memory_gb)
    bad = blockers(checks)
    print(f"doctor: {len(bad)} blocker(s)" + (": " + ", ".join(c.name for c in bad) if bad else "; ready to train"))
    return 1 if bad else 0
