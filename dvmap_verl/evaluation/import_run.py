"""``dvmap import-run``: the authors' evaluation CSVs (eval_api_parallel.py) as a normal run folder.

Their CSV has one row per benchmark item with the columns :data:`THEIR_COLUMNS`; ``Common Language`` is missing and
``frequency`` is empty. Each row is joined to its benchmark item by the prompt text (unique per item), which
restores the attributes and the cell frequency; ``response`` becomes the completion. Rows that join nothing, that
repeat an item (their resume can append duplicates after a crash) or whose answer differs from the item's are
counted and named, never dropped silently or counted twice. ``dvmap report`` then shows their ``is_correct``, their
rule recomputed, and our resolver side by side.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from dvmap_verl.reward.answers import extract_answer, option_set
from dvmap_verl.evaluation.evaluate import ITEMS, PREDICTIONS, REJECTED, RUN, EvalConfig, items_fingerprint, \
    load_items
from dvmap_verl.evaluation.runs import RunFolder, dumps_line
from dvmap_verl.io import atomic_path
from dvmap_verl.errors import InputError, MissingInputError

THEIR_COLUMNS = ("UID", "Q_id", "prompt", "Country", "Gender", "Marital Status", "Has Children", "Education Level",
                 "Occupation", "Work Nature", "Religion", "Life Stage", "Income Bracket", "response", "answer",
                 "frequency", "Options", "expected", "predicted", "is_correct")
REQUIRED = ("UID", "prompt", "response", "answer", "is_correct")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
SHOW = 20  # UIDs named per problem


class RunImportError(InputError):
    pass


def read_their_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MissingInputError(f"{path}: no such file (--release-csv)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise RunImportError(f"{path}: empty file (no header, no rows); expected the authors' evaluation CSV with "
                             f"the columns {', '.join(REQUIRED)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise RunImportError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise RunImportError(f"{path}: missing column(s) {missing} of the authors' evaluation CSV "
                           f"(expected {', '.join(THEIR_COLUMNS)})")
    df["csv_file"] = str(path)
    df["csv_row"] = range(1, len(df) + 1)  # the data row's number (responses span lines, so not a line number)
    return df


def import_release_csv(csv_files: list[str | Path], benchmark: str | Path, out_dir: str | Path,
                       model: str | None = None, quiet: bool = False) -> dict[str, Any]:
    csvs = [read_their_csv(Path(p)) for p in csv_files]
    rows = pd.concat(csvs, ignore_index=True)
    items = load_items([benchmark])
    users = [json.loads(m)[-1]["content"] for m in items["messages"]]
    by_prompt: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i, text in enumerate(users):
        if text in by_prompt:
            ambiguous.add(text)
        by_prompt.setdefault(text, i)

    problems: dict[str, list[str]] = {"unjoined": [], "duplicate": [], "ambiguous_prompt": [], "answer_mismatch": [],
                                      "bad_is_correct": []}
    taken: dict[int, str] = {}
    records = []
    for r in rows.itertuples(index=False):
        where = f"{r.UID} ({Path(r.csv_file).name} row {r.csv_row})"
        item = by_prompt.get(r.prompt)
        flag = str(r.is_correct).strip().lower()
        if item is None:
            problems["unjoined"].append(where)
        elif r.prompt in ambiguous:
            problems["ambiguous_prompt"].append(where)
        elif item in taken:
            problems["duplicate"].append(f"{where}, repeats {taken[item]}")
        elif r.answer != items["options"].iloc[item][items["truth"].iloc[item]]:
            problems["answer_mismatch"].append(f"{where}: {r.answer!r}")
        elif flag not in _TRUE | _FALSE:
            problems["bad_is_correct"].append(f"{where}: {r.is_correct!r}")
        else:
            taken[item] = where
            options = tuple(items["options"].iloc[item])
            answer = extract_answer(r.response)
            pred = option_set(options).resolve(answer)
            records.append({"item": item, "sample": 0, "completion": r.response, "answer": answer,
                            "pred": -1 if pred is None else pred, "their_is_correct": flag in _TRUE,
                            "uid": str(r.UID)})

    summary = {
        "files": [str(p) for p in csv_files],
        "rows_read": int(len(rows)),
        "imported": len(records),
        "benchmark_items": int(len(items)),
        **{k: {"count": len(v), "rows": v[:SHOW]} for k, v in problems.items()},
    }
    config = EvalConfig(backend="release-csv", model=model or Path(csv_files[0]).stem, data=[str(benchmark)],
                        samples=1, temperature=None,  # type: ignore[arg-type]  # not recorded in their CSV
                        note="Imported from the authors' evaluation CSV(s) (eval_api_parallel.py): their model, "
                             "sampling settings and completions; one sample per item.")
    folder = RunFolder(out_dir, PREDICTIONS, REJECTED, fingerprint_key="items_fingerprint")
    with folder.lock():
        if folder.run_record() is not None:
            raise RunImportError(f"{folder.out}: already holds a run; import into a new folder")
        run = {"config": asdict(config), "items_fingerprint": items_fingerprint(items),
               "n_items": len(items), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "import": summary}
        text = folder.encode_run(run)  # checked before anything is written
        with atomic_path(folder.out / ITEMS) as tmp:
            items.to_parquet(tmp, index=False)
        with atomic_path(folder.results) as tmp:
            tmp.write_text("".join(dumps_line(r) for r in records), encoding="ascii")
        with atomic_path(folder.out / RUN) as tmp:  # last: a folder with run.json is a whole run
            tmp.write_text(text)
    if not quiet:
        print(f"read {summary['rows_read']:,} rows from {len(csv_files)} file(s); imported {len(records):,} of "
              f"{len(items):,} benchmark items")
        for k, v in problems.items():
            if v:
                shown = "; ".join(v[:5]) + (f"; ... {len(v) - 5} more (run.json lists {SHOW})" if len(v) > 5 else "")
                print(f"  {k.replace('_', ' ')}: {len(v)} row(s) not imported: {shown}")
    return summary
