"""Import of the authors' released corpus and benchmark, laid out as they ship it.

The release (github.com/EnlightenedAI/DVMap) is::

    Demographic_Value_Alignment/DVMap_Corpus/{train,dev,test}.parquet
    Triple-Generalization_Evaluation_Benchmark/Cross-{Demographic,Country,Value}/   (datasets.save_to_disk folders)

:func:`discover_release` finds every table under the clone root, either subfolder, or a single file/folder;
:func:`read_release_table` reads one through the library that wrote it (pyarrow for parquet of any row groups,
``datasets.load_from_disk`` for Arrow folders of any shards and batches). Users without WVS access train and
evaluate on exactly the authors' data: prompts and ``frequency`` are kept verbatim.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from dvmap_verl.data.completeness import (CORPUS_DIR, OUTSIDE, MissingSplitError, check_layout,  # noqa: F401
                                          completeness_report, require_split)
from dvmap_verl.data.dataset import profile_keys
from dvmap_verl.data.distributions import cell_distributions
from dvmap_verl.data.prepare import split_summary, write_outputs
from dvmap_verl.data.prompts import USER_TEMPLATES, template_format_tags, template_system
from dvmap_verl.data.schema import RELEASE_COLUMNS
from dvmap_verl.data.splits import add_frequency
from dvmap_verl.errors import InputError

# Release file/folder name (lower-cased) -> our split name.
RELEASE_PARTS = {
    "train": "train",
    "dev": "val",
    "val": "val",
    "validation": "val",
    "test": "test",
    "cross-demographic": "cross_demographic",
    "cross_demographic": "cross_demographic",
    "cross-country": "cross_country",
    "cross_country": "cross_country",
    "cross-value": "cross_value",
    "cross_value": "cross_value",
}
REQUIRED = tuple(c for c in RELEASE_COLUMNS if c not in ("frequency", "prompt"))
# Folders that are never data: VCS and caches, and code projects (the release ships a verl fork beside the data).
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
_CODE_MARKERS = ("setup.py", "pyproject.toml", "setup.cfg")
# The release's deepest table sits two folders below the clone root; one more level of slack for wrappers.
MAX_DEPTH = 4
EXPECTED = ("Demographic_Value_Alignment/DVMap_Corpus/{train,dev,test}.parquet and "
            "Triple-Generalization_Evaluation_Benchmark/Cross-{Demographic,Country,Value}/")


class ReleaseInputError(InputError):
    pass


@dataclass(frozen=True)
class ReleaseTable:
    split: str
    path: Path

    @property
    def kind(self) -> str:
        return "parquet" if self.path.is_file() else "arrow folder"


def is_hf_folder(path: Path) -> bool:
    """A ``datasets.save_to_disk`` folder: ``state.json`` beside its ``data-*.arrow`` shards."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()
                              or any(path.glob("*.arrow")))


def _split_of(path: Path) -> str | None:
    return RELEASE_PARTS.get((path.stem if path.is_file() else path.name).lower())


def discover_release(path: str | Path) -> list[ReleaseTable]:
    """Every release table at ``path`` (clone root, a subfolder, a parquet file or an Arrow folder).

    A table whose name is not a release split is an error that names it, as are two tables of one split: nothing
    present is skipped silently.
    """
    path = Path(path)
    if not path.exists():
        raise ReleaseInputError(f"{path}: no such file or folder")
    if path.is_file() or is_hf_folder(path):
        if path.is_file() and path.suffix != ".parquet":
            raise ReleaseInputError(f"{path}: not a release table (a .parquet file or a datasets.save_to_disk "
                                    f"folder); the release ships {EXPECTED}")
        candidates = [path]
    else:
        candidates = _walk_tables(path)
    found: dict[str, ReleaseTable] = {}
    unknown = []
    for table in candidates:
        split = _split_of(table)
        if split is None:
            unknown.append(table)
        elif split in found:
            raise ReleaseInputError(f"two tables for split {split!r}: {found[split].path} and {table}; "
                                    f"point --input at one of them")
        else:
            found[split] = ReleaseTable(split, table)
    if unknown:
        raise ReleaseInputError(
            f"not a release split name: {', '.join(map(str, unknown))} (known names: "
            f"{', '.join(sorted({k for k in RELEASE_PARTS}))}); move it away or point --input at the release tables")
    if not found:
        raise ReleaseInputError(f"{path}: no release tables found (looked {MAX_DEPTH} folders deep for parquet files "
                                f"and datasets.save_to_disk folders; the release ships {EXPECTED})")
    order = {s: i for i, s in enumerate(dict.fromkeys(RELEASE_PARTS.values()))}
    return sorted(found.values(), key=lambda t: order[t.split])


#: Layouts whose every table is expected: a table of them that is not whole stops a read, even one not found.
_WHOLE_LAYOUTS = ("the release's clone root", "the release's DVMap_Corpus folder", "the release's benchmark folder")


def tables_to_read(path: str | Path, *, test_items: bool, what: str = "this command") -> list[ReleaseTable]:
    """The release tables at ``path`` that a command reads, after checking the layout with
    :func:`~dvmap_verl.data.completeness.check_layout`.

    ``test_items``: the tables are read as test items (``eval --data``, ``baselines --test``): a ``train`` table
    found inside a folder is skipped with a note on stderr (it is read only when ``path`` names it). A table to be
    read that is missing, an LFS pointer or lacks shards raises :class:`ReleaseInputError` carrying the whole
    completeness table (:func:`~dvmap_verl.data.completeness.completeness_report`) and the LFS hint; nothing is
    read. In a recognised release layout (clone root, ``DVMap_Corpus``, benchmark folder) every table it should
    hold counts (``train`` aside for test items); in any other folder, the tables found."""
    path = Path(path)
    tables = discover_release(path)
    named = path.is_file() or is_hf_folder(path)
    skipped = [t for t in tables if test_items and not named and t.split == "train"]
    tables = [t for t in tables if t not in skipped]
    for t in skipped:
        print(f"NOTE: {path}: its train split ({t.path}) is not read as test items; give that table itself to "
              f"evaluate it", file=sys.stderr)
    kind, expected = check_layout(path, {t.split: t.path for t in tables})
    reading = {t.split for t in tables}
    gaps = [e for e in expected if not e.ok and e.status != OUTSIDE and (
        e.split in reading or (kind in _WHOLE_LAYOUTS and not any(e.split == t.split for t in skipped)
                               and not (test_items and e.split == "train")))]
    if gaps:
        raise ReleaseInputError(
            f"{path}: {what} would read {len(gaps)} table(s) that are not whole ({', '.join(e.split for e in gaps)}); "
            f"nothing was read.\n" + completeness_report(path, kind, expected) +
            f"\nor name the whole tables themselves (e.g. {CORPUS_DIR}/dev.parquet)")
    return tables


def _walk_tables(root: Path) -> list[Path]:
    tables = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        keep = []
        for d in sorted(dirnames):
            sub = here / d
            if d.startswith(".") or d in _SKIP_DIRS or d.endswith(".egg-info"):
                continue
            if is_hf_folder(sub):
                tables.append(sub)  # a table, not a folder to search
            elif depth + 1 < MAX_DEPTH and not any((sub / m).is_file() for m in _CODE_MARKERS):
                keep.append(d)
        dirnames[:] = keep
        tables += [here / f for f in sorted(filenames) if f.endswith(".parquet") and not f.startswith(".")]
    return tables


def read_table(path: Path) -> pa.Table:
    """One table as a single-chunk Arrow table: a parquet file (any row groups) or a ``save_to_disk`` folder (any
    shards and record batches)."""
    if path.is_file():
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise ReleaseInputError(f"{path}: not a readable parquet file ({e})") from e
    else:
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError, OSError) as e:
            raise ReleaseInputError(f"{path}: not a readable datasets.save_to_disk folder ({e})") from e
        if isinstance(ds, datasets.DatasetDict):
            raise ReleaseInputError(f"{path}: a DatasetDict (splits {list(ds)}); point --input at one split folder")
        table = ds.with_format("arrow")[:]  # applies any indices mapping, as datasets itself reads it
    return table.combine_chunks()


def read_release_table(path: Path) -> pd.DataFrame:
    """One release table as a DataFrame, checked: the release's columns, rows, answers among the options."""
    table = read_table(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ReleaseInputError(f"{path}: missing release column(s) {missing}")
    if table.num_rows == 0:
        raise ReleaseInputError(f"{path}: the table is empty")
    df = table.to_pandas()
    for i, (opts, ans) in enumerate(zip(df["Options"], df["answer"])):
        if ans not in str(opts).split(", "):
            raise ReleaseInputError(f"{path}: row {i}: answer {ans!r} is not one of its Options {opts!r}")
    if "frequency" not in df.columns:
        df["frequency"] = add_frequency(df).to_numpy()
    df["profile_id"] = df["profile_key"] = profile_keys(df)
    return df


def prepare_release(input_path: str | Path, out_dir: str | Path, *, template: str | None = None,
                    system: str | None = None, overwrite: bool = False, quiet: bool = False,
                    targets: str = "point") -> dict[str, Any]:
    """``template``: None keeps the release's prompts verbatim; a template name re-renders every prompt from the row's
    attributes, question and options (the paper's Table 4 settings on the authors' data).

    ``targets="distribution"``: the release has no respondent data, so the only real distribution is a row's
    (country, question) cell within its split (the release's ``frequency`` for every option); it becomes
    ``extra_info.target``."""
    if template is not None and template not in USER_TEMPLATES:
        raise ReleaseInputError(f"unknown prompt template {template!r}; known: {sorted(USER_TEMPLATES)}")
    system = system or template_system(template or "release")
    if targets not in ("point", "distribution"):
        raise ReleaseInputError(f"unknown targets {targets!r}; known: point, distribution")
    tables = discover_release(input_path)
    # Every table the recognised layout should hold, checked before reading any: one import names them all.
    kind, expected = check_layout(input_path, {t.split: t.path for t in tables})
    whole = {e.split: e for e in expected if e.ok}
    tables = [t for t in tables if t.split in whole]
    if not tables:
        raise ReleaseInputError("no release table is whole, nothing imported\n" +
                                completeness_report(input_path, kind, expected))
    splits = {}
    for t in tables:
        splits[t.split] = read_release_table(t.path)
        whole[t.split].rows = len(splits[t.split])
        if targets == "distribution":
            splits[t.split] = splits[t.split].assign(target=cell_distributions(splits[t.split]))
        if not quiet:
            print(f"read {t.path} ({t.kind}): {len(splits[t.split]):,} rows -> {t.split}.parquet")
    stats = {
        "synthetic": False,
        "source": "release",
        "input": str(input_path),
        "inputs": [{"path": str(t.path), "kind": t.kind, "split": t.split, "rows": len(splits[t.split])}
                   for t in tables],
        "system_prompt": system,
        "template": template or "release (verbatim prompt column)",
        "reward_format_tags": template_format_tags(template or "release"),
        "targets": targets if targets == "point" else "distribution (the (country, question) cell within each split: "
                                                      "the release has no respondent data)",
        "splits": split_summary(splits),
        "layout": kind,
        "completeness": [e.as_dict() for e in expected],
    }
    write_outputs(out_dir, splits, stats, source="dvmap", template=template or "release", system=system,
                  keep_prompt=template is None, overwrite=overwrite)
    if not quiet:
        for name, s in stats["splits"].items():
            print(f"{name:>18}: {s['rows']:>7,} rows, {s['profiles']:>6,} profiles")
    gaps = any(not e.ok for e in expected)
    if gaps or not quiet:  # a gap is said even with --quiet: every later command would fail on it
        print(completeness_report(input_path, kind, expected), file=sys.stderr if gaps else sys.stdout)
    return stats
