"""OpinionQA (Santurkar et al. 2023, tatsu-lab/opinions_qa) in its two shipped forms.

1. Per-wave folders ``American_Trends_Panel_W{wave}/`` (give the folder of folders, or one wave folder) with
   ``info.csv`` (``key``, ``option_mapping``, ``question``, ``references``, ``option_ordinal``; Python-repr
   cells), ``metadata.csv`` (``key`` = attribute, ``options`` = its groups, a list repr) and ``responses.csv``
   (one row per respondent: one column per question key holding the label, the attribute columns, and the weight
   ``WEIGHT_W{wave}``). As ``helpers.py`` ``extract_human_opinions``: per group, the respondents' weights summed
   per label; the ordinal options are ``references[:len(option_ordinal)]``, everything after them is refusal
   (its weight over the total is the refusal share); non-string answers are dropped (and counted here). One item
   per (question, attribute, group) plus one for all respondents (group ``Overall``). The draw count of an item
   is its group's respondents who answered.
2. The distributional benchmark's ``{GROUP}_data.json`` count files (Meister et al. 2024):
   ``{qkey: {"MC_options": [...], "question_text": str, "<group>": {label: count}}}``. Options follow
   ``MC_options``; refusal labels split off. When an ``info.csv`` lies beside them its ordinal positions are used;
   otherwise the items are non-ordinal. Draw count: 30 (Meister et al.'s floor).

Prompts (``--template``): ``qa``, ``bio``, ``portray`` (OpinionQA's steering for a group; the wording is
reconstructed, see the README) and ``persona`` (the DVMap persona template with the group).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from dvmap_verl.data.benchmarks import ImportOptions, ImportResult, Importer, register_importer
from dvmap_verl.data.benchmarks.common import (BadRow, Target, answer_instruction, is_refusal, item_row, literal,
                                               make_target, numbers, persona_prompt)
from dvmap_verl.errors import InputError, MissingInputError

NAME = "opinionqa"
MEISTER_DRAWS = 30
OVERALL = "Overall"
INFO_COLUMNS = ("key", "question", "references", "option_ordinal")
#: Per attribute: the question asked for QA steering, the BIO sentence and the PORTRAY clause ({} = the group).
STEERING = {
    "CREGION": ("Which part of the United States do you currently live in?", "I currently live in the {}.",
                "you currently lived in the {}"),
    "AGE": ("What is your age?", "I am {} years old.", "you were {} years old"),
    "SEX": ("What is your sex?", "I am {}.", "you were {}"),
    "EDUCATION": ("What is the highest level of schooling or degree that you have completed?",
                  "The highest level of education I have completed is {}.",
                  "the highest level of education you have completed was {}"),
    "CITIZEN": ("Are you a citizen of the United States?", "Asked whether I am a US citizen, I answer {}.",
                "asked whether you are a US citizen, you answered {}"),
    "MARITAL": ("Which of these best describes you?", "As to my marital status, I am {}.",
                "as to your marital status, you were {}"),
    "RELIG": ("What is your present religion, if any?", "My present religion is {}.",
              "your present religion was {}"),
    "RELIGATTEND": ("Aside from weddings and funerals, how often do you attend religious services?",
                    "I attend religious services {}.", "you attended religious services {}"),
    "POLPARTY": ("In politics today, do you consider yourself a", "In politics today, I consider myself a {}.",
                 "in politics today, you considered yourself a {}"),
    "INCOME": ("Last year, what was your total family income from all sources, before taxes?",
               "Last year, my total family income from all sources, before taxes, was {}.",
               "last year your total family income from all sources, before taxes, was {}"),
    "POLIDEOLOGY": ("In general, would you describe your political views as",
                    "In general, I would describe my political views as {}.",
                    "in general, you would describe your political views as {}"),
    "RACE": ("What is your race or origin?", "I am {}.", "you were {}"),
}


def mc_block(question: str, options: list[str]) -> str:
    return "Question: " + question + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def prompt(template: str, attribute: str, group: str, groups: list[str], question: str, options: list[str]) -> str:
    """The question as a multiple-choice block, steered towards ``group`` of ``attribute`` (none for Overall)."""
    body = mc_block(question, options) + "\n\n" + answer_instruction()
    if attribute == OVERALL:
        return body
    ask, bio, portray = STEERING.get(attribute, (f"What is your {attribute.lower()}?",
                                                 f"My {attribute.lower()} is {{}}.",
                                                 f"your {attribute.lower()} was {{}}"))
    if template == "qa":
        letter = chr(65 + groups.index(group)) if group in groups else "?"
        return f"{mc_block(ask, groups)}\nAnswer: {letter}\n\n{body}"
    if template == "bio":
        return (f"Below you will be asked to provide a short description of yourself and then answer some "
                f"questions.\nDescription: {bio.format(group)}\n\n{body}")
    if template == "portray":
        return f"Answer the following question as if {portray.format(group)}.\n\n{body}"
    return persona_prompt([bio.format(group)], question, options)


# ---------------------------------------------------------------------------------------------------------------
# Per-wave folders
# ---------------------------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MissingInputError(f"{path}: missing (an OpinionQA wave folder holds info.csv, metadata.csv and "
                                f"responses.csv)")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV ({e})") from None


def read_info(path: Path, bad) -> dict[str, dict]:
    """``{key: {question, references, ordinal}}`` from an ``info.csv``."""
    info = _read_csv(path)
    missing = [c for c in INFO_COLUMNS if c not in info.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    out = {}
    for i, rec in enumerate(info.to_dict("records"), start=1):
        try:
            if not rec["key"].strip() or not rec["question"].strip():
                raise BadRow(path, i, "key" if not rec["key"].strip() else "question", "empty cell")
            refs = [str(r) for r in literal(rec["references"], path, i, "references", (list, tuple))]
            ordinal = numbers(literal(rec["option_ordinal"], path, i, "option_ordinal", (list, tuple)), path, i,
                              "option_ordinal")
            if not 1 <= len(ordinal) <= len(refs):
                raise BadRow(path, i, "option_ordinal", f"{len(ordinal)} ordinal values for {len(refs)} references")
            out[rec["key"].strip()] = {"question": rec["question"].strip(), "references": refs, "ordinal": ordinal,
                                       "row": i}
        except BadRow as b:
            bad.add(b)
    return out


def _metadata(path: Path, bad) -> dict[str, list[str]]:
    meta = _read_csv(path)
    if not {"key", "options"} <= set(meta.columns):
        raise InputError(f"{path}: needs columns 'key' and 'options', has {list(meta.columns)}")
    out = {}
    for i, rec in enumerate(meta.to_dict("records"), start=1):
        try:
            out[rec["key"].strip()] = [str(o) for o in literal(rec["options"], path, i, "options", (list, tuple))]
        except BadRow as b:
            bad.add(b)
    return out


def _weights(resp: pd.DataFrame, path: Path, wave: str | None, bad) -> tuple[np.ndarray, str]:
    cols = [c for c in resp.columns if re.fullmatch(r"WEIGHT_W\d+", c)]
    want = f"WEIGHT_W{wave}" if wave else (cols[0] if len(cols) == 1 else None)
    if want is None or want not in resp.columns:
        raise InputError(f"{path}: no weight column {want or 'WEIGHT_W{wave}'} (has {cols or 'none'})")
    w = pd.to_numeric(resp[want].replace("", np.nan), errors="coerce").to_numpy(dtype=float, copy=True)
    for i in np.flatnonzero(~np.isfinite(w) | (w < 0)):
        bad.add(BadRow(path, int(i) + 1, want, f"not a non-negative weight: {resp[want].iloc[i]!r}"))
        w[i] = 0.0  # skipped (--skip-bad-rows): this respondent counts nowhere
    return w, want


def _group_target(answers: pd.Series, w: np.ndarray, refs: list[str], n_ord: int, file, row, col):
    """Weighted shares per reference label (answers outside the references are counted apart)."""
    known = answers.isin(refs).to_numpy()
    sums = pd.Series(w[known]).groupby(answers[known].to_numpy()).sum()
    values = [float(sums.get(r, 0.0)) for r in refs]
    respondents = int((known & (w > 0)).sum())
    refusal = [i >= n_ord for i in range(len(refs))]
    return make_target(refs, values, refusal, file, row, col, scale="weight"), respondents, int((~known).sum())


def read_wave(folder: Path, opts: ImportOptions, stats: dict) -> list[dict]:
    bad = opts.bad
    m = re.search(r"_W(\d+)$", folder.name)
    wave = m.group(1) if m else None
    info = read_info(folder / "info.csv", bad)
    meta = _metadata(folder / "metadata.csv", bad)
    resp = _read_csv(folder / "responses.csv")
    w, wcol = _weights(resp, folder / "responses.csv", wave, bad)
    groups = [(OVERALL, OVERALL, np.ones(len(resp), bool))]
    for attr, labels in meta.items():
        if attr not in resp.columns:
            stats["attributes_not_in_responses"].append(f"{folder.name}:{attr}")
            continue
        groups += [(attr, g, (resp[attr] == g).to_numpy()) for g in labels]
    rows = []
    for key, q in info.items():
        if key not in resp.columns:
            bad.add(BadRow(folder / "info.csv", q["row"], "key", f"{key!r} is not a column of responses.csv"))
            continue
        n_ord = len(q["ordinal"])
        for attr, group, mask in groups:
            try:
                t, n, unknown = _group_target(resp[key][mask], w[mask], q["references"], n_ord,
                                              folder / "responses.csv", f"(respondents of {attr}={group})", key)
            except BadRow:  # no answerable weight in this group: nothing to score, counted
                stats["empty_groups"] += 1
                continue
            if attr == OVERALL:  # each respondent once: the groups are subsets of Overall
                stats["answers_not_in_references"] += unknown
            names = meta.get(attr, [])
            rows.append(item_row(
                benchmark=NAME, split=NAME, q_id=key, question=q["question"], category=folder.name, t=t,
                user=prompt(opts.template, attr, group, names, q["question"], t.options),
                country=OVERALL if attr == OVERALL else f"{attr}={group}", group_attribute=attr, group=group,
                ordinal=q["ordinal"],
                n=opts.draws or max(n, 1), prompt_format=f"{NAME}:{opts.template}", source=f"{folder.name} ({wcol})",
                input_file=folder / "info.csv", input_row=q["row"], respondents=n,
                render_args=render_args(attr, group, names, q["question"])))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The distributional benchmark's count files
# ---------------------------------------------------------------------------------------------------------------


def _meister_item(key, entry, group, counts, attr, file, info, opts, groups):
    options = entry.get("MC_options")
    options = [str(o) for o in literal(options, file, key, "MC_options", (list, tuple))]
    if not isinstance(counts, dict):
        raise BadRow(file, key, group, f"not a label -> count mapping: {counts!r}")
    stray = [lab for lab in counts if lab not in options]
    if stray:
        raise BadRow(file, key, group, f"label(s) {stray} are not among MC_options {options}")
    values = numbers([counts.get(o, 0.0) for o in options], file, key, group)
    q = info.get(key)
    ordinal_labels = q["references"][:len(q["ordinal"])] if q else None
    refusal = [o not in ordinal_labels if ordinal_labels else is_refusal(o) for o in options]
    if not any(v > 0 for v, r in zip(values, refusal) if not r):
        return None  # refusals only (or no answer): nothing to score, counted as in the per-wave format
    t: Target = make_target(options, values, refusal, file, key, group, scale="count")
    ordinal = [q["ordinal"][ordinal_labels.index(o)] for o in t.options] if q and all(
        o in ordinal_labels for o in t.options) else [float("nan")] * len(t.options)
    question = str(entry.get("question_text") or "").strip()
    if not question:
        raise BadRow(file, key, "question_text", "empty")
    return item_row(
        benchmark=NAME, split=NAME, q_id=key, question=question, category=file.parent.name, t=t,
        user=prompt(opts.template, attr, group, groups, question, t.options), country=f"{attr}={group}",
        group_attribute=attr, group=group, ordinal=ordinal, n=opts.draws or MEISTER_DRAWS,
        prompt_format=f"{NAME}:{opts.template}", source=file.name, input_file=file, input_row=key,
        respondents=int(round(t.raw_sum)), render_args=render_args(attr, group, groups, question))


def read_counts(files: list[Path], opts: ImportOptions, stats: dict | None = None) -> list[dict]:
    """Items of ``{GROUP}_data.json`` count files. The unit of a bad row is one group of one question (a bad
    group leaves its question's other groups in); a group with refusals only is counted in
    ``stats["groups_without_answers"]``, not malformed."""
    stats = {} if stats is None else stats
    stats.setdefault("groups_without_answers", 0)
    rows = []
    for file in files:
        attr = file.name[:-len("_data.json")]
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"{file}: not a readable JSON file ({e})") from None
        if not isinstance(data, dict):
            raise InputError(f"{file}: expected {{qkey: {{MC_options, question_text, <group>: counts}}}}")
        info = read_info(file.parent / "info.csv", opts.bad) if (file.parent / "info.csv").is_file() else {}
        for key, entry in data.items():
            groups = [g for g in entry if g not in ("MC_options", "question_text")] if isinstance(entry, dict) else []
            try:
                if not isinstance(entry, dict) or "MC_options" not in entry:
                    raise BadRow(file, key, "MC_options", "missing")
                if not groups:
                    raise BadRow(file, key, "<group>", "no group counts")
            except BadRow as b:
                opts.bad.add(b)
                continue
            for g in groups:
                try:
                    item = _meister_item(key, entry, g, entry[g], attr, file, info, opts, groups)
                except BadRow as b:
                    opts.bad.add(b)
                    continue
                if item is None:
                    stats["groups_without_answers"] += 1
                else:
                    rows.append(item)
    return rows


def read(path: Path, opts: ImportOptions) -> ImportResult:
    stats = {"empty_groups": 0, "answers_not_in_references": 0, "attributes_not_in_responses": []}
    if path.is_file() and path.name.endswith("_data.json"):
        return ImportResult(read_counts([path], opts, stats), [str(path)], [_counts_note(False)],
                            extra_stats={"groups_without_answers": stats["groups_without_answers"]})
    if (path / "responses.csv").is_file():
        waves = [path]
    else:
        waves = sorted(p for p in path.iterdir() if (p / "responses.csv").is_file()) if path.is_dir() else []
    if waves:
        rows = [r for folder in waves for r in read_wave(folder, opts, stats)]
        return ImportResult(rows, [str(f) for f in waves], [
            "per-wave: weighted by WEIGHT_W{wave}; refusal = the options after the ordinal ones; non-string "
            "answers dropped (answers_not_in_references counts them)"], extra_stats=stats)
    counts = sorted(path.glob("*_data.json")) if path.is_dir() else []
    counts = [f for f in counts if f.name[:-len("_data.json")].isupper()]
    if counts:
        return ImportResult(read_counts(counts, opts, stats), [str(f) for f in counts],
                            [_counts_note((path / "info.csv").is_file())],
                            extra_stats={"groups_without_answers": stats["groups_without_answers"]})
    raise MissingInputError(f"{path}: neither an OpinionQA wave folder (info.csv, metadata.csv, responses.csv), a "
                            f"folder of them, nor {{GROUP}}_data.json count files")


def _counts_note(with_info: bool) -> str:
    return ("count files: options in MC_options order with the refusal split off (Meister et al. score the "
            "alphabetical present-only labels with Refused inside the target); ordinal positions "
            + ("from the info.csv beside them" if with_info else "unknown (no info.csv beside them): non-ordinal")
            + f"; sampling floor with {MEISTER_DRAWS} draws unless --draws")


def render_args(attribute: str, group: str, groups: list[str], question: str) -> dict:
    return {"attribute": attribute, "group": group, "groups": list(groups), "question": question}


def render(template: str, args: dict, options: list[str]) -> str:
    return prompt(template, args["attribute"], args["group"], args["groups"], args["question"], options)


register_importer(Importer(NAME, read, ("qa", "bio", "portray", "persona"),
                           "OpinionQA per-wave folders (info/metadata/responses.csv) or {GROUP}_data.json counts",
                           "tatsu-lab/opinions_qa data/human_resp; BENCHMARK_FORMATS.md sections 2 and 3",
                           render=render))
