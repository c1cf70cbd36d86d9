"""Thin wrapper: same as `dvmap synth-wvs` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth-wvs", *sys.argv[1:]]))
