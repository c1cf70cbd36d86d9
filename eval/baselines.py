"""Thin wrapper: same as `dvmap baselines` (see `--help`)."""

import sys

from dvmap_verl.cli import main

if __name__ == "__main__":
    sys.exit(main(["baselines", *sys.argv[1:]]))
