"""What an import found against what the release's layout holds, stated once and in full.

The authors' release (github.com/EnlightenedAI/DVMap) keeps its large files in git LFS: a clone made without
``git lfs`` (or a copy of part of it) lacks ``train.parquet`` and the ``Cross-*/data-*.arrow`` shards, or holds
small pointer files in their place. :func:`check_layout` recognises which part of the layout ``--input`` is
(clone root, ``DVMap_Corpus``, the benchmark folder), lists every table that part should hold, and says of each
whether it is there, missing, or not fetched, so that one import names every missing file at once
(:func:`completeness_report`). :func:`require_split` is for later commands: a table they need that is not in a
prepared folder is named with the import that would make it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dvmap_verl.jsonl import load_json_object
from dvmap_verl.errors import MissingInputError

CORPUS_DIR = "Demographic_Value_Alignment/DVMap_Corpus"
BENCH_DIR = "Triple-Generalization_Evaluation_Benchmark"
#: our split -> the release's file (parquet) or folder (datasets.save_to_disk), per part of the layout.
CORPUS = {"train": "train.parquet", "val": "dev.parquet", "test": "test.parquet"}
BENCH = {"cross_demographic": "Cross-Demographic", "cross_country": "Cross-Country", "cross_value": "Cross-Value"}
#: What each table is for: said of a missing one (what needs it) and of a present one (what still works).
USES = {
    "train": "training (the GRPO recipes' data.train_files, dvmap smoke) and `dvmap baselines --train`",
    "val": "validation during training and `dvmap eval` on the corpus dev split",
    "test": "`dvmap eval` on the corpus test split",
    "cross_demographic": "the cross-demographic axis of the benchmark (`dvmap eval --data cross_demographic.parquet`)",
    "cross_country": "the cross-country axis of the benchmark (`dvmap eval --data cross_country.parquet`)",
    "cross_value": "the cross-value axis of the benchmark (`dvmap eval --data cross_value.parquet`)",
}
LFS_HINT = "large files not fetched by the clone (git LFS): run `git lfs install && git lfs pull` in the clone"
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/"

FOUND, MISSING, NOT_FETCHED, INCOMPLETE, OUTSIDE = ("found", "missing", "not fetched (git LFS pointer)",
                                                     "incomplete", "not under --input")


@dataclass
class Expected:
    """One table the recognised layout holds: where it should be and what is there."""

    split: str
    path: Path
    status: str = FOUND
    missing_files: list[str] = field(default_factory=list)
    rows: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == FOUND

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def is_lfs_pointer(path: Path) -> bool:
    """A git LFS pointer file (a few hundred bytes of text) standing in for a large file a clone did not fetch."""
    try:
        if path.stat().st_size > 1024:
            return False
        with open(path, "rb") as fh:
            return fh.read(len(_LFS_MAGIC)) == _LFS_MAGIC
    except OSError:
        return False


def _data_files(folder: Path) -> list[str]:
    """The shard names a ``save_to_disk`` folder's state.json lists (its ``*.arrow`` files when it lists none)."""
    try:
        state = json.loads((folder / "state.json").read_text())
        names = [str(f["filename"]) for f in state.get("_data_files", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        names = []
    return names or sorted(p.name for p in folder.glob("*.arrow"))


def table_status(split: str, path: Path) -> Expected:
    """Is this table whole? A parquet file present and not an LFS pointer; an Arrow folder with every shard its
    state.json lists, none of them a pointer."""
    e = Expected(split, path)
    if path.suffix == ".parquet" or path.is_file():
        if not path.is_file():
            e.status, e.missing_files = MISSING, [path.name]
        elif is_lfs_pointer(path):
            e.status, e.missing_files = NOT_FETCHED, [path.name]
        return e
    if not path.is_dir():
        e.status, e.missing_files = MISSING, [path.name + "/"]
        return e
    shards = _data_files(path)
    absent = [s for s in shards if not (path / s).is_file()]
    pointers = [s for s in shards if (path / s).is_file() and is_lfs_pointer(path / s)]
    if not shards:
        e.status, e.missing_files = INCOMPLETE, ["data-*.arrow (no shard at all)"]
    elif absent or pointers:
        e.status = NOT_FETCHED if pointers and not absent else INCOMPLETE
        e.missing_files = absent + pointers
    return e


def _part_of(split: str) -> tuple[dict[str, str], str]:
    return (CORPUS, CORPUS_DIR) if split in CORPUS else (BENCH, BENCH_DIR)


def check_layout(input_path: str | Path, found: dict[str, Path]) -> tuple[str, list[Expected]]:
    """The layout ``input_path`` is recognised as, and every table it should hold (``found``: split -> the path
    discovery found for it). A part of the release outside ``--input`` is listed as such when the input is one
    part of a clone."""
    root = Path(input_path)
    parts: dict[str, Path] = {}  # "corpus"/"bench" -> the folder that should hold it
    if root.is_file() or (root.is_dir() and any(root.glob("*.arrow"))) or (root / "state.json").is_file():
        kind = "a single table"
    elif any((root / d).is_dir() for d in (CORPUS_DIR, BENCH_DIR, CORPUS_DIR.split("/")[0])):
        kind = "the release's clone root"
        parts = {"corpus": root / CORPUS_DIR, "bench": root / BENCH_DIR}
    else:
        kind = "a folder of release tables"
        for split, path in found.items():
            parts.setdefault("corpus" if split in CORPUS else "bench", path.parent)
        if root.name == "DVMap_Corpus":
            kind, parts = "the release's DVMap_Corpus folder", {"corpus": root}
        elif root.name == BENCH_DIR:
            kind, parts = "the release's benchmark folder", {"bench": root}
    expected = []
    for part, names in (("corpus", CORPUS), ("bench", BENCH)):
        for split, name in names.items():
            if split in found:
                expected.append(table_status(split, found[split]))
            elif part in parts:
                expected.append(table_status(split, parts[part] / name))
            elif parts and kind != "a single table":
                expected.append(Expected(split, Path(_part_of(split)[1]) / name, OUTSIDE))
    return kind, expected


def completeness_report(input_path: str | Path, kind: str, expected: list[Expected]) -> str:
    """The table of what was found and what is missing, with the likely cause and what still works."""
    root = Path(input_path)
    lines = [f"{root}: {kind}; the release's tables it should hold:",
             f"  {'split':<18} {'status':<30} {'rows':>8}  file"]
    for e in expected:
        where = _rel(e.path, root)
        detail = _detail(e)
        rows = f"{e.rows:,}" if e.rows is not None else "-"
        lines.append(f"  {e.split:<18} {e.status:<30} {rows:>8}  {where}{detail}")
    missing = [e for e in expected if not e.ok and e.status != OUTSIDE]
    outside = [e for e in expected if e.status == OUTSIDE]
    if missing:
        fetched = any(e.status in (NOT_FETCHED, INCOMPLETE) or e.path.parent.is_dir() for e in missing)
        cause = LFS_HINT if fetched else "not in the download (a partial copy of the release?)"
        files = [_rel(e.path / f if e.path.suffix != ".parquet" and e.status != MISSING else e.path, root)
                 for e in missing for f in (e.missing_files if e.status != MISSING else [""])]
        lines.append(f"missing {len(missing)} of {len(expected) - len(outside)} tables; files absent: "
                     f"{', '.join(files)}")
        lines.append(f"likely cause: {cause}; then rerun this import with --overwrite")
        lines.extend(f"  without {e.split}: {USES[e.split]} cannot run" for e in missing)
    if outside:
        lines.append(f"not imported ({', '.join(e.split for e in outside)}): outside --input; give the clone root to "
                     f"import every part")
    ok = [e.split for e in expected if e.ok]
    if missing or outside:
        lines.append(f"still works: {'; '.join(USES[s] for s in ok) if ok else 'nothing (no table is whole)'}")
    return "\n".join(lines)


def _detail(e: Expected) -> str:
    """`` (absent: a, b; LFS pointer: c)`` for a table some of whose files are absent or only pointers."""
    if not e.missing_files or e.status == MISSING:
        return ""
    base = e.path if e.path.is_dir() else e.path.parent
    pointers = [f for f in e.missing_files if (base / f).is_file() and is_lfs_pointer(base / f)]
    absent = [f for f in e.missing_files if f not in pointers]
    parts = ([f"absent: {', '.join(absent)}"] if absent else []) + \
            ([f"LFS pointer: {', '.join(pointers)}"] if pointers else [])
    return f" ({'; '.join(parts)})"


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root) if path.is_relative_to(root) and path != root else path)


class MissingSplitError(MissingInputError):
    """A prepared folder lacks a table a command needs; the message names the import that would make it."""


def require_split(data_dir: str | Path, split: str, command: str = "this command") -> Path:
    """``data_dir/<split>.parquet``, or a :class:`MissingSplitError` naming why it is absent (from the folder's
    stats.json: the release import found it missing, or no prepare ran here) and the command that makes it.
    A folder a killed prepare left mid-commit is refused too (the next prepare restores it)."""
    from dvmap_verl.io import JOURNAL

    data = Path(data_dir)
    path = data / f"{split}.parquet"
    if (data / JOURNAL).exists():
        raise MissingSplitError(f"{data}: a prepare was stopped while moving its files in; rerun that prepare (it "
                                f"restores the folder) before {command}")
    if path.is_file():
        return path
    try:  # only for the hint: an unreadable stats.json gives the generic one
        stats = load_json_object(data / "stats.json", required=False) or {}
    except (OSError, ValueError):
        stats = {}
    if stats.get("source") == "release":
        src = stats.get("input", "<DVMap clone>")
        gap = next((e for e in stats.get("completeness", []) if isinstance(e, dict) and e.get("split") == split),
                   None)
        if gap and gap.get("status") == OUTSIDE:
            why = f"the release import from {src} did not cover it ({gap['path']} is outside that --input)"
        elif gap:
            why = f"the release import from {src} found {gap['path']} {gap['status']}"
        else:
            why = f"the release import from {src} had no {split} table"
        fix = (f"{'fetch it (' + LFS_HINT + '), then ' if gap and gap.get('status') != OUTSIDE else ''}run "
               f"`dvmap prepare release --input <the clone root> --out {data} --overwrite`")
        raise MissingSplitError(f"{path}: {command} needs the {split} split, absent here: {why}; {fix}")
    if stats.get("source") == "wvs":
        raise MissingSplitError(f"{path}: {command} needs the {split} split, absent from this prepared folder: "
                                f"run `dvmap prepare wvs --input {stats.get('input', '<WVS file>')} --out {data} "
                                f"--overwrite`")
    raise MissingSplitError(f"{path}: {command} needs the {split} split and {data} holds no prepared data: run "
                            f"`dvmap prepare release --input <DVMap clone root> --out {data}` or `dvmap prepare wvs "
                            f"--input <WVS file> --out {data}` first")


def check_input(path: str | Path, option: str, command: str) -> Path:
    """``path`` when it exists; else the error a user can act on: for ``DIR/<split>.parquet`` in a prepared folder,
    :func:`require_split`'s (why the split is absent, the import that makes it), otherwise one naming the path and
    ``option``. Raises :class:`MissingSplitError` / FileNotFoundError."""
    from dvmap_verl.io import MANIFEST

    path = Path(path)
    if path.exists():
        return path
    if path.suffix == ".parquet" and ((path.parent / "stats.json").exists() or (path.parent / MANIFEST).exists()):
        require_split(path.parent, path.stem, f"{command} ({option})")
    raise MissingInputError(f"{path}: no such file or folder ({option})")
