"""``dvmap smoke``: prove a cluster install (tiny model, synthetic data, 2 GRPO steps, eval)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    sm = subparsers.add_parser("smoke", help="prove a cluster install: tiny model, synthetic data, 2 GRPO steps, eval")
    sm.add_argument("--gpus", type=positive_int, default=1, help="GPUs on this node to use")
    sm.add_argument("--recipe", default="dvmap_qwen3_0.6b", help="the recipe whose settings are exercised")
    sm.add_argument("--model", help="a local model folder instead of the tiny one")
    sm.add_argument("--items", type=positive_int, default=16, help="benchmark items for the vLLM evaluation")
    sm.add_argument("--out", type=Path, default=Path("smoke_out"), help="folder for every step's output and log")
    sm.add_argument("--dry-run", action="store_true", help="print every command with its overrides; run nothing")
    return sm


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.training import smoke
    _check_recipe(args.recipe)
    if not args.dry_run:
        smoke.preflight(args.gpus)  # before any step starts or the output folder is made
    steps = smoke.plan(args.out, gpus=args.gpus, recipe=args.recipe, model=args.model, items=args.items)
    if args.dry_run:
        for i, step in enumerate(steps, 1):
            print(f"# [{i}/{len(steps)}] {step.name}\n{step.shell()}")
        return 0
    return smoke.run(steps, args.out)


def _check_recipe(name: str) -> None:
    """:class:`InputError` naming the shipped recipes when ``--recipe`` is not one of them (the dry run too)."""
    import dvmap_verl.recipes as recipes
    from dvmap_verl.errors import InputError

    folder = Path(recipes.__file__).parent / "recipe"
    known = sorted(p.stem for p in folder.glob("dvmap_*.yaml")
                   if p.stem not in ("dvmap_base", "dvmap_qwen3") and not p.stem.endswith("4b_sft"))  # sft: not GRPO
    if name not in known:
        raise InputError(f"--recipe {name}: no such recipe; shipped: {', '.join(known)}")
