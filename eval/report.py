"""Thin wrapper: same as `dvmap report` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
