"""Import of the authors' released corpus and benchmark (parquet files and ``datasets.save_to_disk`` folders).

Users without WVS access train and evaluate on exactly the authors' data: the release's user prompts are kept
verbatim, its ``frequency`` column too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dvmap_verl.dataset import profile_keys
from dvmap_verl.prepare import split_summary, write_outputs
from dvmap_verl.schema import RELEASE_COLUMNS
from dvmap_verl.splits import add_frequency

# Release file/folder name -> our split name.
RELEASE_PARTS = {
    "train": "train",
    "dev": "val",
    "val": "val",
    "validation": "val",
    "cross-demographic": "cross_demographic",
    "cross_demographic": "cross_demographic",
    "cross-country": "cross_country",
    "cross_country": "cross_country",
    "cross-value": "cross_value",
    "cross_value": "cross_value",
}
REQUIRED = tuple(c for c in RELEASE_COLUMNS if c not in ("frequency", "prompt"))


class ReleaseInputError(ValueError):
    pass


def read_release_table(path: Path) -> pd.DataFrame:
    """One release table: a parquet file or a ``save_to_disk`` Arrow folder."""
    if path.is_file() and path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.is_dir() and list(path.glob("*.arrow")):
        df = _read_arrow_dir(path)
    else:
        raise ReleaseInputError(f"{path}: neither a .parquet file nor a datasets.save_to_disk folder (*.arrow)")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ReleaseInputError(f"{path}: missing release column(s) {missing}")
    if df.empty:
        raise ReleaseInputError(f"{path}: the table is empty")
    for i, (opts, ans) in enumerate(zip(df["Options"], df["answer"])):
        if ans not in str(opts).split(", "):
            raise ReleaseInputError(f"{path}: row {i}: answer {ans!r} is not one of its Options {opts!r}")
    df = df.copy()
    if "frequency" not in df.columns:
        df["frequency"] = add_frequency(df).to_numpy()
    df["profile_id"] = df["profile_key"] = profile_keys(df)
    return df


def _read_arrow_dir(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    tables = []
    for f in sorted(path.glob("*.arrow")):
        with pa.memory_map(str(f)) as src:
            try:
                tables.append(pa.ipc.open_stream(src).read_all())
            except pa.ArrowInvalid:
                src.seek(0)
                tables.append(pa.ipc.open_file(src).read_all())
    return pa.concat_tables(tables).to_pandas()


def find_release_parts(path: Path) -> dict[str, Path]:
    """split name -> table path, for a release folder, or a single file/folder named like a split."""
    if not path.exists():
        raise ReleaseInputError(f"{path}: no such file or folder")
    single = RELEASE_PARTS.get(path.stem.lower()) if path.suffix == ".parquet" or list(path.glob("*.arrow")) else None
    if single:
        return {single: path}
    parts: dict[str, Path] = {}
    if path.is_dir():
        for child in sorted(path.iterdir()):
            name = RELEASE_PARTS.get(child.stem.lower() if child.suffix == ".parquet" else child.name.lower())
            if name and name not in parts:
                parts[name] = child
    if not parts:
        raise ReleaseInputError(
            f"{path}: no release tables found (expected train.parquet, dev.parquet and/or the folders "
            f"Cross-Demographic, Cross-Country, Cross-Value)")
    return parts


def prepare_release(input_path: str | Path, out_dir: str | Path, *, system: str = "release",
                    quiet: bool = False) -> dict[str, Any]:
    parts = find_release_parts(Path(input_path))
    splits = {name: read_release_table(p) for name, p in parts.items()}
    stats = {
        "synthetic": False,
        "source": "release",
        "input": str(input_path),
        "parts": {k: str(v) for k, v in parts.items()},
        "system_prompt": system,
        "template": "release (verbatim prompt column)",
        "splits": split_summary(splits),
    }
    write_outputs(out_dir, splits, stats, source="dvmap", template="release", system=system, keep_prompt=True)
    if not quiet:
        for name, s in stats["splits"].items():
            print(f"{name:>18}: {s['rows']:>7,} rows, {s['profiles']:>6,} profiles")
    return stats
