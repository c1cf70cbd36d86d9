"""Thin wrapper: same as `dvmap prepare release` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "release", *sys.argv[1:]]))
