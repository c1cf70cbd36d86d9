"""Thin wrapper: same as `dvmap eval` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
