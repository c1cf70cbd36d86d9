"""One module per ``dvmap`` command.

Each module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` (adds its sub-command, with ``help`` and
arguments) and ``run(args) -> int`` (does the work; the exit status). ``dvmap_verl/cli.py`` only assembles the
modules listed in :data:`COMMANDS`; adding a command is one new module here plus one name in that list.
"""
