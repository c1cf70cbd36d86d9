"""The README is a contract: every `dvmap ...` and `python -m ...` command it prints parses as printed.

Commands come from the fenced code blocks of README.md and recipes/README.md (continuation lines joined, comments
dropped, ``$B``/``$D`` expanded as the README defines them) and from inline code spans that hold a whole ``dvmap``
command. ``dvmap`` lines go through the real argument parser (parse only, nothing runs); ``python -m
verl.trainer.main_ppo`` lines are composed by Hydra with verl's config and this package's recipes, which is what
``--cfg job`` prints; other ``python -m`` modules must exist.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "recipes/README.md"]
# The README's own placeholders (Reproducing the paper): D a prepared folder, B its three benchmark splits.
ENV = {"D": "data/dvmap", "B": "data/dvmap/cross_demographic.parquet data/dvmap/cross_country.parquet "
                                 "data/dvmap/cross_value.parquet"}
COMMAND = re.compile(r"^(dvmap|python -m) ")


def fenced_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each `dvmap`/`python -m` command in the fenced code blocks."""
    out, inside, buf, start = [], False, "", 0
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            inside, buf = not inside, ""
            continue
        if not inside:
            continue
        buf, start = (buf + " " + line.strip(), start) if buf else (line.strip(), no)
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        if COMMAND.match(buf):
            out.append((start, buf))
        buf = ""
    return out


def inline_commands(text: str) -> list[tuple[int, str]]:
    """Inline code spans holding a whole command: `dvmap SUB ... --out ...` (fragments such as `dvmap eval` or
    `dvmap eval --template direct` name an option, not a command, and are left alone)."""
    out, inside = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            out += [(no, span) for span in re.findall(r"`([^`]+)`", line)
                    if span.startswith("dvmap ") and " --out " in span and "..." not in span]
    return out


def argv_of(command: str) -> list[str]:
    words = []
    for word in shlex.split(command, comments=True):
        m = re.fullmatch(r"\$(\w+)(/.*)?", word)
        words += (ENV[m.group(1)] + (m.group(2) or "")).split() if m else [word]
    return words


def all_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        found += [(f"{doc}:{no}", cmd) for no, cmd in fenced_commands(text) + inline_commands(text)]
    return found


COMMANDS = all_commands()


def test_the_readmes_hold_the_commands_this_test_checks():
    names = [argv_of(c)[1] for _, c in COMMANDS if c.startswith("dvmap ")]
    # Every console command the README lists under Install appears at least once as a full command.
    for sub in ("prepare", "doctor", "smoke", "curves", "merge", "eval", "report", "baselines", "import-run",
                "compare", "utility", "analyze"):
        assert sub in names, sub
    assert sum(c.startswith("python -m verl.trainer.main_ppo") for _, c in COMMANDS) >= 10


@pytest.mark.parametrize("where, command", [c for c in COMMANDS if c[1].startswith("dvmap ")],
                         ids=[w for w, c in COMMANDS if c.startswith("dvmap ")])
def test_dvmap_command_parses_as_printed(where, command, capsys):
    from dvmap_verl.cli import build_parser

    try:
        args = build_parser().parse_args(argv_of(command)[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{command}` does not parse: {capsys.readouterr().err.strip()}")
    assert callable(args.func)


def hydra_lines() -> list[tuple[str, list[str]]]:
    return [(where, [w for w in argv_of(c)[3:] if w != "..."]) for where, c in COMMANDS
            if c.startswith("python -m verl.trainer.main_ppo")]


def test_training_commands_compose_with_verl_and_the_recipes():
    """What `python -m verl.trainer.main_ppo OVERRIDES --cfg job` prints, through Hydra's compose API (in process:
    one Hydra start per distinct override list instead of one Python start per line)."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from dvmap_verl.training.dryrun import compose_ppo_config

    composed = {}
    for where, overrides in hydra_lines():
        key = tuple(overrides)
        if key not in composed:
            try:
                composed[key] = compose_ppo_config(overrides)
            except (HydraException, OmegaConfBaseException) as e:
                pytest.fail(f"{where}: main_ppo {' '.join(overrides)} does not compose: {e}")
        cfg = composed[key]
        for o in overrides:
            name, _, value = o.lstrip("+").partition("=")
            if name != "recipe" and "." in name:
                assert str(OmegaConf.select(cfg, name)) == value, (where, o)  # the override took effect


def test_other_python_modules_exist():
    for where, command in COMMANDS:
        if command.startswith("python -m ") and not command.startswith("python -m verl.trainer.main_ppo"):
            module = argv_of(command)[2]
            assert importlib.util.find_spec(module), f"{where}: no module {module}"
