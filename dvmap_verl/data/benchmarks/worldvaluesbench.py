"""WorldValuesBench (Zhao et al. 2024): the generated TSVs, ``question_metadata.json`` and the probe set.

- ``{split}_value_qa.tsv`` / ``{split}_demographic_qa.tsv``: tab-separated, ``D_INTERVIEW`` first, one row per
  participant; an empty cell is a missing answer (skipped and counted, never an error); value cells are integer
  codes on the question's scale (``2`` or ``2.0``).
- ``question_metadata.json``: ``{qid: {question, category, use_case, answer_scale_min, answer_scale_max,
  answer_data_type}}``; the options of an ordinal question are its scale's codes ``min..max`` as text; a
  non-ordinal question's options are the codes observed.
- ``probe/samples.tsv`` (``Question``, ``Question Category``, ``Continent``, ``Urban / Rural``, ``Education``,
  ``D_INTERVIEW``): the probe set's groups; a group's distribution is its sampled participants' answers, read
  from ``full/full_value_qa.tsv`` (else the valid, then the test split). Without a probe set (``--input`` a split
  folder), a group is a country (``B_COUNTRY`` of the demographic TSV).

The draw count of an item is the number of its group's participants who answered (5 in the probe set): the
benchmark compares the model's answers for the same participants. Prompts: ``default`` (the group's description,
the question and its scale), ``persona`` (the DVMap persona template).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dvmap_verl.data.benchmarks import ImportOptions, ImportResult, Importer, register_importer
from dvmap_verl.data.benchmarks.common import BadRow, Target, answer_instruction, item_row, persona_prompt
from dvmap_verl.errors import InputError, MissingInputError

NAME = "worldvaluesbench"
PROBE_COLUMNS = ("Question", "Question Category", "Continent", "Urban / Rural", "Education", "D_INTERVIEW")
SPLITS = ("full", "valid", "test", "train")


def _find(path: Path, name: str) -> Path | None:
    for base in (path, path.parent, path.parent.parent):
        if (base / name).is_file():
            return base / name
    return None


def _tsv(file: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not a readable TSV ({e})") from None


def read_metadata(file: Path) -> dict[str, dict]:
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{file}: not a readable JSON file ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{file}: expected {{qid: {{question, answer_scale_min, answer_scale_max, ...}}}}")
    return meta


def _scale(meta: dict, qid: str, file: Path) -> tuple[int, int] | None:
    """(min, max) of an ordinal question; None for a non-ordinal one."""
    m = meta.get(qid)
    if not isinstance(m, dict):
        raise InputError(f"{file}: no entry for question {qid!r}")
    if m.get("answer_data_type") != "ordinal" or m.get("answer_scale_min") in ("", None):
        return None
    try:
        lo, hi = int(m["answer_scale_min"]), int(m["answer_scale_max"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{file}: {qid}: answer_scale_min/max are not integers: {m}") from None
    if hi <= lo:
        raise InputError(f"{file}: {qid}: answer scale {lo}..{hi} is empty")
    return lo, hi


def _codes(column: pd.Series, file: Path, qid: str, scale, bad, rows: np.ndarray) -> pd.Series:
    """Integer codes of a value column (empty: missing, kept as NaN); a non-integer or off-scale cell is a bad row
    (with --skip-bad-rows, treated as missing)."""
    codes = pd.to_numeric(column.replace("", np.nan), errors="coerce")
    wrong = column.ne("") & (codes.isna() | (codes != codes.round()))
    if scale is not None:
        wrong |= codes.notna() & ((codes < scale[0]) | (codes > scale[1]))
    for i in np.flatnonzero(wrong.to_numpy()):
        bad.add(BadRow(file, int(rows[i]), qid, f"not an answer code{' on ' + str(scale) if scale else ''}: "
                                                f"{column.iloc[i]!r}"))
    return codes.mask(wrong)


def _target(codes: pd.Series, scale) -> tuple[Target, list[float]] | None:
    answered = codes.dropna().astype(int)
    if answered.empty:
        return None
    values = list(range(scale[0], scale[1] + 1)) if scale else sorted(answered.unique())
    counts = answered.value_counts()
    raw = [float(counts.get(v, 0)) for v in values]
    n = float(sum(raw))
    t = Target([str(v) for v in values], [c / n for c in raw], [], float("nan"), n, "count")
    return t, ([float(v) for v in values] if scale else [float("nan")] * len(values))


def prompt(template: str, facts: list[str], question: str, scale, options: list[str]) -> str:
    if template == "persona":
        return persona_prompt(facts, question, options)
    rng = f"a number from {scale[0]} to {scale[1]}" if scale else "one of " + ", ".join(options)
    who = " ".join(facts)
    return f"{who}\n\nQuestion: {question}\nAnswer with {rng}. {answer_instruction()}".strip()


def _answers(root: Path) -> Path:
    for split in SPLITS:
        for cand in (root / split / f"{split}_value_qa.tsv", root / f"{split}_value_qa.tsv"):
            if cand.is_file():
                return cand
    raise MissingInputError(f"{root}: no {{split}}_value_qa.tsv (full, valid, test or train) for the probe set's "
                            f"participants")


def _group_items(values: pd.DataFrame, groups: pd.DataFrame, keys: list[str], questions: list[str], meta, files,
                 opts: ImportOptions, stats: dict) -> list[dict]:
    """One item per (question, group): ``groups`` maps D_INTERVIEW to the group columns ``keys``."""
    vfile, mfile = files
    joined = groups.merge(values, on="D_INTERVIEW", how="left", indicator=True)
    stats["participants_not_found"] += int((joined["_merge"] == "left_only").sum())
    rows = []
    for qid in questions:  # a question the files cannot answer is one bad row (listed with --skip-bad-rows)
        if qid not in values.columns:
            opts.bad.add(BadRow(vfile, "(header)", qid, "no such column (asked by the probe set or the metadata)"))
            continue
        if not isinstance(meta.get(qid), dict):
            opts.bad.add(BadRow(mfile, qid, qid, "no entry for this question (asked by the probe set)"))
            continue
        scale = _scale(meta, qid, mfile)
        part = joined[joined["Question"] == qid] if "Question" in joined else joined
        codes = _codes(part[qid].fillna(""), vfile, qid, scale, opts.bad, part["_row"].to_numpy())
        stats["missing_answers"] += int(codes.isna().sum())
        for key, idx in part.groupby(keys, sort=True).groups.items():
            got = _target(codes.loc[idx], scale)
            if got is None:
                stats["groups_without_answers"] += 1
                continue
            t, ordinal = got
            key = key if isinstance(key, tuple) else (key,)
            facts = [f"{k}: {v}." for k, v in zip(keys, key)]
            m = meta[qid]
            rows.append(item_row(
                benchmark=NAME, split=NAME, q_id=qid, question=str(m.get("question", qid)),
                category=str(m.get("category", "")), t=t,
                user=prompt(opts.template, facts, str(m.get("question", qid)), scale, t.options),
                country=" | ".join(map(str, key)), group_attribute=" x ".join(keys), group=" | ".join(map(str, key)),
                ordinal=ordinal, n=opts.draws or t.raw_sum, prompt_format=f"{NAME}:{opts.template}",
                source=vfile.name, input_file=vfile, input_row=f"{qid} @ {' | '.join(map(str, key))}",
                scale=scale, render_args={"facts": facts, "question": str(m.get("question", qid)),
                                          "scale": list(scale) if scale else None}))
    return rows


def read(path: Path, opts: ImportOptions) -> ImportResult:
    mfile = _find(path, "question_metadata.json")
    if mfile is None:
        raise MissingInputError(f"{path}: no question_metadata.json here or in the two folders above")
    meta = read_metadata(mfile)
    stats = {"missing_answers": 0, "participants_not_found": 0, "groups_without_answers": 0}
    probe = path if path.is_file() and path.name == "samples.tsv" else next(
        (c for c in (path / "probe" / "samples.tsv", path / "samples.tsv") if c.is_file()), None)
    if probe is not None:
        root = probe.parent.parent
        vfile = _answers(root)
        groups = _tsv(probe)
        missing = [c for c in PROBE_COLUMNS if c not in groups.columns]
        if missing:
            raise InputError(f"{probe}: missing column(s) {missing}; the probe set has {list(PROBE_COLUMNS)}")
        values = _tsv(vfile)
        values["_row"] = np.arange(1, len(values) + 1)
        questions = list(dict.fromkeys(groups["Question"]))
        rows = _group_items(values, groups, ["Continent", "Urban / Rural", "Education"], questions, meta,
                            (vfile, mfile), opts, stats)
        return ImportResult(rows, [str(probe), str(vfile), str(mfile)], [
            f"probe set: groups = Continent x Urban / Rural x Education; answers read from {vfile.name}"], stats)
    vfile = next((f for f in sorted(path.glob("*_value_qa.tsv"))), None) if path.is_dir() else \
        (path if path.name.endswith("_value_qa.tsv") else None)
    dfile = vfile.with_name(vfile.name.replace("_value_qa", "_demographic_qa")) if vfile else None
    if vfile is None or not dfile.is_file():
        raise MissingInputError(f"{path}: neither probe/samples.tsv nor a {{split}}_value_qa.tsv with its "
                                f"{{split}}_demographic_qa.tsv")
    values, demo = _tsv(vfile), _tsv(dfile)
    if "B_COUNTRY" not in demo.columns:
        raise InputError(f"{dfile}: no B_COUNTRY column (the country groups)")
    values["_row"] = np.arange(1, len(values) + 1)
    questions = [q for q in values.columns if q in meta and meta[q].get("use_case") == "value"]
    rows = _group_items(values, demo[["D_INTERVIEW", "B_COUNTRY"]], ["B_COUNTRY"], questions, meta,
                        (vfile, mfile), opts, stats)
    return ImportResult(rows, [str(vfile), str(dfile), str(mfile)], ["groups = countries (B_COUNTRY)"], stats)


def render(template: str, args: dict, options: list[str]) -> str:
    """The default template of an ordinal question names the scale, not the options: the same prompt in every
    order (the options are still scored, or read back, in the order given)."""
    return prompt(template, args["facts"], args["question"], args["scale"], options)


register_importer(Importer(NAME, read, ("default", "persona"),
                           "WorldValuesBench TSVs + question_metadata.json, or its probe set (probe/samples.tsv)",
                           "github.com/Demon702/WorldValuesBench; BENCHMARK_FORMATS.md section 4", render=render))
