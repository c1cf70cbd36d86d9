"""SubPOP (Suh et al. 2025): ``data/{subpop-train|subpop-eval}/processed/{name}.csv`` and the HF ``.jsonl`` form.

Fields ``qkey,attribute,group,responses,refusal_rate,ordinal,question,options``: ``responses`` is the group's
distribution without the refusal (renormalised here too, the raw sum recorded), ``options`` ends with
``Refused`` (so it is one longer than ``responses``: the two are not paired one-to-one), ``refusal_rate`` is the
refusal share. In the CSV the lists are Python reprs; in the JSONL native lists (either is accepted in either).
``ordinal``: one position per response; ``-1.0`` marks a non-ordinal option (left out of the ordinal EMD), and
an all-equal list (SubPOP-Train's ``[1.0]*K`` placeholder) means the question is not ordinal. Draw count: 30
unless ``--draws`` (the files give no sample sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dvmap_verl.data.benchmarks import ImportOptions, ImportResult, Importer, register_importer
from dvmap_verl.data.benchmarks.common import BadRow, is_refusal, item_row, literal, make_target, numbers, \
    persona_prompt
from dvmap_verl.data.benchmarks.opinionqa import prompt as steered_prompt
from dvmap_verl.errors import InputError, MissingInputError

NAME = "subpop"
COLUMNS = ("qkey", "attribute", "group", "responses", "refusal_rate", "ordinal", "question", "options")
DEFAULT_DRAWS = 30


def _records(file: Path, bad) -> list[tuple[int, dict]]:
    if file.suffix == ".jsonl":
        out = []
        for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                bad.add(BadRow(file, i, "<line>", f"not a JSON object ({e})"))
                continue
            out.append((i, rec))
        return out
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not a readable CSV ({e})") from None
    return list(enumerate(frame.to_dict("records"), start=1))


def _refusal_rate(value, file, row) -> float:
    if value is None or str(value).strip() == "":
        raise BadRow(file, row, "refusal_rate", "empty cell")
    rate = numbers([value], file, row, "refusal_rate")[0]
    if not 0 <= rate <= 1:
        raise BadRow(file, row, "refusal_rate", f"not a share in [0, 1]: {value!r}")
    if rate == 1:  # everyone refused, beside a distribution of answers: more likely 1 percent on the wrong scale
        raise BadRow(file, row, "refusal_rate", f"{value!r}: every respondent refused, yet the responses hold a "
                                                f"distribution (a percentage? give a share in [0, 1))")
    return rate


def _item(rec: dict, row: int, file: Path, opts: ImportOptions, groups: dict[str, list[str]]) -> dict:
    missing = [c for c in COLUMNS if c not in rec]
    if missing:
        raise BadRow(file, row, missing[0], "missing field")
    for col in ("qkey", "attribute", "group", "question"):
        if not str(rec[col]).strip():
            raise BadRow(file, row, col, "empty cell")
    responses = numbers(literal(rec["responses"], file, row, "responses", (list, tuple)), file, row, "responses")
    options = [str(o) for o in literal(rec["options"], file, row, "options", (list, tuple))]
    ordinal = numbers(literal(rec["ordinal"], file, row, "ordinal", (list, tuple)), file, row, "ordinal")
    if len(options) == len(responses) + 1 and is_refusal(options[-1]):
        answerable, refusal_labels = options[:-1], [options[-1]]
    elif len(options) == len(responses):
        answerable, refusal_labels = options, []
    else:
        raise BadRow(file, row, "options", f"{len(options)} options for {len(responses)} responses (expected the "
                                           f"responses' options plus a final refusal option)")
    if len(ordinal) != len(answerable):
        raise BadRow(file, row, "ordinal", f"{len(ordinal)} positions for {len(answerable)} answerable options")
    t = make_target(answerable, responses, [False] * len(answerable), file, row, "responses")
    t.refusal_options, t.refusal_share = refusal_labels, _refusal_rate(rec["refusal_rate"], file, row)
    attr, group, question = str(rec["attribute"]), str(rec["group"]), str(rec["question"]).strip()
    args = {"attribute": attr, "group": group, "groups": list(groups.get(attr, [group])), "question": question}
    user = render(opts.template, args, t.options)
    return item_row(benchmark=NAME, split=NAME, q_id=str(rec["qkey"]), question=question, category=file.stem, t=t,
                    user=user, country=f"{attr}={group}", group_attribute=attr, group=group, ordinal=ordinal,
                    n=opts.draws or DEFAULT_DRAWS, prompt_format=f"{NAME}:{opts.template}", source=file.name,
                    input_file=file, input_row=row, render_args=args)


def read(path: Path, opts: ImportOptions) -> ImportResult:
    files = [path] if path.is_file() else sorted([*path.glob("*.csv"), *path.glob("*.jsonl")])
    if not files:
        raise MissingInputError(f"{path}: no SubPOP .csv or .jsonl file")
    rows = []
    for file in files:
        records = _records(file, opts.bad)
        if file.suffix != ".jsonl" and records and set(COLUMNS) - set(records[0][1]):
            raise InputError(f"{file}: missing column(s) {sorted(set(COLUMNS) - set(records[0][1]))}; SubPOP has "
                             f"{list(COLUMNS)}")
        groups: dict[str, list[str]] = {}
        for _, rec in records:  # each attribute's groups in first-seen order (QA steering lists them)
            g = groups.setdefault(str(rec.get("attribute", "")), [])
            if str(rec.get("group", "")) not in g:
                g.append(str(rec.get("group", "")))
        for i, rec in records:
            try:
                rows.append(_item(rec, i, file, opts, groups))
            except BadRow as b:
                opts.bad.add(b)
    placeholder = sum(1 for r in rows if not r["is_ordinal"])
    notes = [f"{placeholder} item(s) without ordinality (all-equal positions, SubPOP-Train's placeholder, or "
             f"non-ordinal options only): the ordinal EMD is not computed for them",
             f"no sample sizes in the files: the sampling floor draws {opts.draws or DEFAULT_DRAWS} answers"]
    return ImportResult(rows, [str(f) for f in files], notes)


def render(template: str, args: dict, options: list[str]) -> str:
    attr, group, question = args["attribute"], args["group"], args["question"]
    if template == "persona":
        return persona_prompt([f"As to {attr.lower()}, you are {group}."], question, options)
    return steered_prompt(template, attr, group, args["groups"], question, options)


register_importer(Importer(NAME, read, ("qa", "bio", "portray", "persona"),
                           "SubPOP processed CSV or HF JSONL (qkey, attribute, group, responses, refusal_rate, ...)",
                           "github.com/JosephJeesungSuh/subpop; BENCHMARK_FORMATS.md section 5", render=render))
