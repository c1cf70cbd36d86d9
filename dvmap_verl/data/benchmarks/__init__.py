"""Peer opinion benchmarks as DVMap evaluation items: one importer module per benchmark, found by name.

An importer reads the benchmark's files in the format it ships (see ``BENCHMARK_FORMATS.md`` and the README's
"Benchmarks" section) and returns items (:func:`.common.item_row`); :func:`import_benchmark` writes them, all or
nothing, as ``{benchmark}_{template}.parquet`` (the file ``dvmap eval --data`` reads; its name, kept in the eval's
``run.json``, records the prompt format) and ``stats.json`` (counts, set-aside items, malformed rows, assumptions).

Adding a benchmark is one module that calls :func:`register_importer`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dvmap_verl.data.benchmarks.common import MAX_OPTIONS, BadRow, BadRows, json_ready, verl_table
from dvmap_verl.errors import InputError, MissingInputError


@dataclass
class ImportOptions:
    template: str              # the prompt format (each importer lists its own in ``Importer.templates``)
    bad: BadRows               # malformed rows: raise, or count and list (--skip-bad-rows)
    draws: int | None = None   # the sampling floor's draw count (None: the benchmark's own default)


@dataclass
class ImportResult:
    rows: list[dict[str, Any]]
    files: list[str]                                          # what was read
    notes: list[str] = field(default_factory=list)            # assumptions taken while reading
    extra_stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Importer:
    name: str
    read: Callable[[Path, ImportOptions], ImportResult]
    templates: tuple[str, ...]   # the first is the default
    description: str
    source: str                  # where the format comes from
    #: ``render(template, render_args, options) -> user message``: the item's prompt with its options shown in
    #: the given order (``dvmap eval --option-order``); ``render_args`` is what the importer stored in the item.
    render: Callable[[str, dict[str, Any], list[str]], str] | None = None


_IMPORTERS: dict[str, Importer] = {}


def register_importer(importer: Importer, *, replace: bool = False) -> Importer:
    if importer.name in _IMPORTERS and not replace:
        raise ValueError(f"importer {importer.name!r} is already registered")
    _IMPORTERS[importer.name] = importer
    return importer


def get_importer(name: str) -> Importer:
    try:
        return _IMPORTERS[name]
    except KeyError:
        raise InputError(f"unknown benchmark {name!r}; known: {sorted(_IMPORTERS)}") from None


def importers() -> list[Importer]:
    return list(_IMPORTERS.values())


def render_item(item: Any, options: list[str]) -> str | None:
    """An imported item's user message re-rendered with its own benchmark template and ``options`` in the given
    order, or None when the item has no recorded template (``prompt_format`` "benchmark:template" and
    ``render_args``, written by import-benchmark) or its importer renders none. Raises :class:`InputError`
    naming the item when its recorded arguments cannot be read."""
    import json

    fmt, args = item.get("prompt_format"), item.get("render_args")
    if not isinstance(fmt, str) or ":" not in fmt or not isinstance(args, str) or not args:
        return None
    name, template = fmt.split(":", 1)
    importer = _IMPORTERS.get(name)
    if importer is None or importer.render is None:
        return None
    try:
        return importer.render(template, json.loads(args), list(options))
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"item {item.get('item')} (q_id {item.get('q_id')!r}): its recorded {name} prompt "
                         f"arguments cannot be rendered again ({type(e).__name__}: {e})") from None


def _without_duplicates(rows: list[dict[str, Any]], bad: BadRows) -> list[dict[str, Any]]:
    """The rows, none sharing an evaluation key (split, group, question: what ``dvmap compare`` pairs runs on).
    Copies of one key are one malformed row naming the file and the rows (raised, or with ``--skip-bad-rows``
    every copy left out and listed: which copy is right cannot be told)."""
    seen: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        seen.setdefault((r["split"], r["profile_id"], r["q_id"]), []).append(r)
    drop = set()
    for (_, profile, q_id), copies in seen.items():
        if len(copies) > 1:
            files = sorted({c["input_file"] for c in copies})
            where = [c["input_row"] for c in copies]
            bad.add(BadRow(", ".join(files), ", ".join(map(str, where)), "key",
                           f"{len(copies)} rows for question {q_id!r} and group {profile!r}: each (question, "
                           f"group) must occur once"))
            drop.update(id(c) for c in copies)
    return [r for r in rows if id(r) not in drop]


def _set_aside(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items the evaluation cannot hold (more answerable options than MAX_OPTIONS) or that ask nothing (fewer than
    two: every readout would be right, and fully consistent, for free) apart, each named."""
    keep, aside = [], []
    for r in rows:
        k = len(r["options"])
        why = f"more than {MAX_OPTIONS} answerable options" if k > MAX_OPTIONS else \
            f"{k} answerable option(s): nothing to choose between" if k < 2 else None
        if why:
            aside.append({"q_id": r["q_id"], "group": r["group"], "country": r["country"], "options": k, "why": why})
        else:
            keep.append(r)
    return keep, aside


def import_benchmark(name: str, input_path: str | Path, out_dir: str | Path, template: str | None = None,
                     skip_bad_rows: bool = False, draws: int | None = None) -> dict[str, Any]:
    """Read ``input_path`` with the ``name`` importer and write its items and ``stats.json`` into ``out_dir``
    (staged: both files appear together or not at all). Returns the stats. Raises :class:`InputError` (a malformed
    row names file, row and column; an unknown template), :class:`MissingInputError`."""
    from dvmap_verl.io import staged_dir, write_json

    importer = get_importer(name)
    template = template or importer.templates[0]
    if template not in importer.templates:
        raise InputError(f"{name}: unknown --template {template!r}; known: {list(importer.templates)}")
    path = Path(input_path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file or folder (the {name} input)")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(f"--out {out_dir}: a file, not a folder (import-benchmark writes a folder of items)")
    if draws is not None and draws < 1:
        raise InputError(f"--draws must be at least 1, not {draws}")
    opts = ImportOptions(template=template, bad=BadRows(skip=skip_bad_rows), draws=draws)
    result = importer.read(path, opts)
    rows, aside = _set_aside(_without_duplicates(result.rows, opts.bad))
    if not rows:  # nothing to write: the error itself names what was skipped and set aside
        why = [f"{b.file}: row {b.row}, column {b.column!r}: {b.why}" for b in opts.bad.rows[:3]]
        why += [f"{a['q_id']} / {a['group']}: {a['why']}" for a in aside[:3]]
        more = len(opts.bad.rows) + len(aside) - len(why)
        raise InputError(f"{path}: no {name} item could be read ({len(opts.bad.rows)} malformed row(s), "
                         f"{len(aside)} set aside" + (": " + "; ".join(why) if why else "")
                         + (f"; and {more} more" if more > 0 else "") + ")")
    out_name = f"{name}_{template}.parquet"
    stats = {
        "benchmark": name, "template": template, "items_file": out_name, "input": str(path),
        "files_read": result.files, "items": len(rows),
        "questions": len({r["q_id"] for r in rows}), "groups": len({(r["group_attribute"], r["group"]) for r in rows}),
        "ordinal_items": sum(r["is_ordinal"] for r in rows),
        "non_ordinal_items": [{"q_id": r["q_id"], "group": r["group"], "why": r["not_ordinal_why"]}
                              for r in rows if not r["is_ordinal"]],
        "items_with_refusal": sum(bool(r["refusal_options"]) for r in rows),
        "set_aside": aside, "bad_rows": {"count": len(opts.bad.rows), "rows": [b.as_dict() for b in opts.bad.rows]},
        "draws": sorted({r["n"] for r in rows}) if len({r["n"] for r in rows}) <= 5 else "per item (extra_info.n)",
        "notes": result.notes, "source": importer.source, **result.extra_stats,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    import pyarrow.parquet as pq

    with staged_dir(out_dir) as stage:
        pq.write_table(verl_table(rows), stage / out_name, compression="zstd")
        write_json(stage / "stats.json", json_ready(stats))
    return stats


# The importers register themselves on import.
from dvmap_verl.data.benchmarks import globalopinionqa, opinionqa, subpop, worldvaluesbench  # noqa: E402,F401
