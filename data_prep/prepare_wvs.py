"""Thin wrapper: same as `dvmap prepare wvs` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "wvs", *sys.argv[1:]]))
