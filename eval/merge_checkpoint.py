"""Turn a verl FSDP checkpoint into a Hugging Face model folder, ready for `dvmap eval`.

    python eval/merge_checkpoint.py CHECKPOINT_DIR TARGET_DIR

CHECKPOINT_DIR: checkpoints/dvmap/<experiment> (latest step), .../global_step_N, or .../global_step_N/actor.
"""

import argparse
import sys

from dvmap_verl.training.checkpoints import merge_fsdp_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("target")
    ap.add_argument("--trust-remote-code", action="store_true")
    args = ap.parse_args(argv)
    try:
        out = merge_fsdp_checkpoint(args.checkpoint, args.target, args.trust_remote_code)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged Hugging Face model -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
