"""Option-order controls: permutations, re-rendered prompts, answers mapped back record by record, the resume guard,
and the report's position bias, cross-order consistency and order-averaged readout with values worked by hand."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.errors import InputError
from dvmap_verl.evaluation import option_order as O
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run, read_predictions, run_eval
from dvmap_verl.evaluation.readouts import Scores
from dvmap_verl.evaluation.report import build_report
from dvmap_verl.evaluation.runs import RunSettingsError

IMPORTANCE = ["Very important", "Rather important", "Not very important", "Not at all important"]


def _displayed(request) -> list[str]:
    """The options as the prompt lists them (the DVMap templates' ``**Options**:`` line)."""
    user = request.messages[-1]["content"]
    return re.search(r"\*\*Options\*\*: (.*)", user).group(1).strip().split(", ")


class FirstOptionBackend:
    """Answers the first displayed option (``reply`` formats it); scores the first displayed option's text at -1
    and every other at -3."""

    name = "first-option"

    def __init__(self, reply=lambda options: f"<answer>{options[0]}</answer>"):
        self.reply = reply

    def run(self, requests, on_result, on_error):
        for r in requests:
            on_result(r, self.reply(_displayed(r)))

    def score(self, requests, on_result, on_error):
        for r in requests:
            first = _displayed(r)[0] + "</answer>"
            on_result(r, Scores(tuple(-1.0 if c == first else -3.0 for c in r.continuations),
                                (1,) * len(r.continuations)))


@pytest.fixture(scope="module")
def val(synthetic_data):
    return str(synthetic_data(3000) / "val.parquet")


def _run(tmp_path, val, backend, **settings):
    config = EvalConfig(backend="stub", model="m", data=[val], seed=3, limit=settings.pop("limit", 12), **settings)
    out = tmp_path / "run"
    items = prepare_run(out, config)
    status = run_eval(backend, out, config, quiet=True, items=items)
    assert status["failed"] == 0
    return out, items, read_predictions(out / PREDICTIONS).sort_values(["item", "sample"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ parsing, prompts


def test_parse_order_and_permutations():
    assert str(O.parse_order("given")) == "given" and O.parse_order(None).count == 1
    assert O.parse_order("shuffled:3") == O.OptionOrder("shuffled", 3)
    for bad in ("sideways", "shuffled", "shuffled:0", "shuffled:-1", "shuffled:101", "reversed:2"):
        with pytest.raises(InputError, match="--option-order"):
            O.parse_order(bad)
    assert O.permutations(O.parse_order("reversed"), 4, item=7, seed=0) == [(3, 2, 1, 0)]
    assert O.permutations(O.parse_order("given"), 3, item=7, seed=0) == [(0, 1, 2)]
    shuffled = O.permutations(O.parse_order("shuffled:3"), 5, item=7, seed=1)
    rng = np.random.default_rng([1, 7])  # the documented seeding, drawn here independently
    assert shuffled == [tuple(rng.permutation(5).tolist()) for _ in range(3)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in shuffled)
    assert O.total_samples(2, "shuffled:3") == 6 and O.total_samples(2, "reversed") == 2
    assert [O.valid_permutation(p, 3) for p in ([2, 0, 1], [0, 0, 1], [0, 1], [0, 1, 3], [True, 0, 2], "012")] \
        == [True, False, False, False, False, False]


def test_release_prompt_is_rerendered_with_the_options_reversed(val):
    from dvmap_verl.evaluation.evaluate import load_items

    items = load_items([val])
    item = items[[list(o) == IMPORTANCE for o in items["options"]]].iloc[0].to_dict()
    before = json.loads(item["messages"])
    after = json.loads(O.permuted_messages(item, (3, 2, 1, 0)))
    old = "**Options**: Very important, Rather important, Not very important, Not at all important\n"
    new = "**Options**: Not at all important, Not very important, Rather important, Very important\n"
    assert old in before[-1]["content"]
    assert after[-1]["content"] == before[-1]["content"].replace(old, new)
    assert after[:-1] == before[:-1]  # the system message is untouched
    assert O.permuted_messages(item, (0, 1, 2, 3)) == item["messages"]


def test_other_prompts_are_rerendered_by_their_options_or_refused():
    def item(user, options):
        return {"item": 5, "q_id": "Q9", "options": options,
                "messages": json.dumps([{"role": "user", "content": user}])}

    lettered = item("Pick one.\nA. Yes\nB. No\nC. Maybe\nAnswer:", ["Yes", "No", "Maybe"])
    assert json.loads(O.permuted_messages(lettered, (2, 0, 1)))[-1]["content"] == \
        "Pick one.\nA. Maybe\nB. Yes\nC. No\nAnswer:"
    joined = item("Options: Yes, No. Say Yes or No.", ["Yes", "No"])  # each twice, but the joined list once
    assert json.loads(O.permuted_messages(joined, (1, 0)))[-1]["content"] == "Options: No, Yes. Say Yes or No."
    ambiguous = item("Yes or No?\nYes\nNo", ["Yes", "No"])
    with pytest.raises(InputError, match=r"item 5 \(q_id 'Q9'\): cannot show its options in another order"):
        O.permuted_messages(ambiguous, (1, 0))


# ------------------------------------------------------------------------------------------------ runs


def test_reversed_run_maps_the_first_displayed_option_back_to_the_last(tmp_path, val):
    """A backend that always answers the first displayed option: under `reversed` every canonical pred is K - 1,
    and all answers sit at displayed position 1."""
    out, items, preds = _run(tmp_path, val, FirstOptionBackend(), option_order="reversed")
    assert len(preds) == len(items) == 12
    for rec in preds.to_dict("records"):
        k = len(items["options"][rec["item"]])
        assert rec["sample"] == 0 and rec["order"] == 0
        assert rec["permutation"] == list(range(k - 1, -1, -1))
        assert rec["pred"] == k - 1 and rec["answer"] == items["options"][rec["item"]][k - 1]
    report = build_report(out, bootstrap=0, importance=False)
    last = (items["truth"] == items["k"] - 1).to_numpy()  # the truth is displayed first exactly when it is last
    pb = report["option_order"]["position_bias"]
    assert pb["records"] == 12 and pb["invalid_permutation"] == 0 and pb["unanswered"] == 0
    assert pb["by_position"][0]["model_share"] == 1.0
    assert all(r["model_share"] == 0.0 for r in pb["by_position"][1:])
    assert pb["by_position"][0]["target_share"] == pytest.approx(last.mean())
    assert pb["tv"] == pytest.approx(1 - last.mean())
    assert report["model"]["acc"] == pytest.approx(last.mean())
    assert "consistency" not in report["option_order"]  # one order: nothing to compare
    md = (out / "report.md").read_text()
    assert "## Option order" in md and f"| 1 | 1.000 | {last.mean():.3f} |" in md


def test_label_answers_are_read_against_the_displayed_list(tmp_path, val):
    """"1" names the first *displayed* option: under `reversed` it is canonical K - 1, in the records and in the
    report's re-reading. On a Low/Medium/High scale a number is a scale point, not a label: unparsed."""
    out, items, preds = _run(tmp_path, val, FirstOptionBackend(lambda options: "<answer>1</answer>"),
                             option_order="reversed", limit=40)
    lmh = np.array([list(o) == ["Low", "Medium", "High"] for o in items["options"]])
    assert lmh.any() and (~lmh).any()
    expected = np.where(lmh, -1, items["k"] - 1)
    assert preds["pred"].tolist() == expected.tolist()
    report = build_report(out, bootstrap=0, importance=False)
    assert report["model"]["acc"] == pytest.approx(float((expected == items["truth"]).mean()))
    assert report["model"]["unparsed_rate"] == pytest.approx(float(lmh.mean()))


def test_shuffled_orders_ride_on_the_sample_axis(tmp_path, val):
    """shuffled:3 with 2 samples per order: samples 0-5, sample s under order s // 2; every pred is the first
    displayed option; consistency and the order-averaged readout worked from the permutations drawn here."""
    out, items, preds = _run(tmp_path, val, FirstOptionBackend(), option_order="shuffled:3", samples=2,
                             temperature=0.7)
    assert len(preds) == 6 * len(items)
    perms = {i: [tuple(p) for p in (lambda rng: [rng.permutation(k).tolist() for _ in range(3)])(
        np.random.default_rng([3, i]))] for i, k in zip(items["item"], items["k"])}
    for rec in preds.to_dict("records"):
        order = rec["sample"] // 2
        assert rec["order"] == order
        assert tuple(rec["permutation"]) == perms[rec["item"]][order]
        assert rec["pred"] == perms[rec["item"]][order][0]
    report = build_report(out, bootstrap=0, importance=False)
    firsts = {i: [p[0] for p in ps] for i, ps in perms.items()}
    consistent = np.mean([len(set(f)) == 1 for f in firsts.values()])
    c = report["option_order"]["consistency"]
    assert c["items"] == 12 and c["items_missing_an_order"] == 0 and c["consistency"] == pytest.approx(consistent)
    # Order-averaged P[truth] = (orders whose first option is the truth) / 3.
    hits = [sum(f == t for f in firsts[i]) / 3 for i, t in zip(items["item"], items["truth"])]
    averaged = report["distributional"]["order_averaged"]
    assert averaged["items"] == 12 and averaged["expected_acc"] == pytest.approx(np.mean(hits))
    assert report["option_order"]["position_bias"]["by_position"][0]["model_share"] == 1.0
    assert "| model, order-averaged |" in (out / "report.md").read_text()


def test_logprob_readout_under_reversed_keeps_canonical_probs_and_raw_logprobs(tmp_path, val):
    out, items, preds = _run(tmp_path, val, FirstOptionBackend(), option_order="reversed", readout="logprob")
    for rec in preds.to_dict("records"):
        k = len(items["options"][rec["item"]])
        # The first displayed (canonical K - 1) option at -1, the others at -3: P = 1 / (1 + (K - 1) e^-2).
        top = 1 / (1 + (k - 1) * math.exp(-2))
        assert rec["logprobs"] == [-3.0] * (k - 1) + [-1.0]
        assert rec["probs"] == pytest.approx([(1 - top) / (k - 1)] * (k - 1) + [top], abs=1e-7)
        assert rec["pred"] == k - 1 and rec["permutation"] == list(range(k - 1, -1, -1))
    pb = build_report(out, bootstrap=0, importance=False)["option_order"]["position_bias"]
    share = np.mean([1 / (1 + (k - 1) * math.exp(-2)) for k in items["k"]])
    assert pb["by_position"][0]["model_share"] == pytest.approx(share)


def test_the_given_order_writes_records_as_before(tmp_path, val):
    out, items, preds = _run(tmp_path, val, FirstOptionBackend(), limit=4)
    assert preds["pred"].tolist() == [0, 0, 0, 0]  # the first displayed option is the first canonical one
    assert "permutation" not in preds and "order" not in preds
    assert "option_order" not in build_report(out, bootstrap=0, importance=False)


def test_a_resume_with_another_order_is_refused(tmp_path, val):
    out = tmp_path / "run"
    base = dict(backend="stub", model="m", data=[val], limit=5)
    prepare_run(out, EvalConfig(**base, option_order="reversed"))
    before = (out / "run.json").read_bytes()
    with pytest.raises(RunSettingsError, match="option_order: was 'reversed', now 'shuffled:2'"):
        prepare_run(out, EvalConfig(**base, option_order="shuffled:2"))
    assert (out / "run.json").read_bytes() == before
    prepare_run(out, EvalConfig(**base, option_order="reversed"))  # the same order resumes
    assert json.loads((out / "run.json").read_text())["config"]["option_order"] == "reversed"


# ------------------------------------------------------------------------------------------------ report by hand


def _hand_records() -> pd.DataFrame:
    rows = [  # item, order, pred (canonical), truth, k, permutation
        (0, 0, 0, 0, 3, [0, 1, 2]),   # answer at position 1; truth at position 1
        (0, 1, 2, 0, 3, [2, 1, 0]),   # answer at position 1; truth at position 3
        (1, 0, 1, 1, 2, [1, 0]),      # answer at position 1; truth at position 1
        (1, 1, 1, 1, 2, [0, 1]),      # answer at position 2; truth at position 2
        (2, 0, -1, 0, 2, [1, 1]),     # no valid permutation (and no answer): left out of the position shares
        (2, 1, 0, 0, 2, [0, 1]),      # answer at position 1; truth at position 1
    ]
    return pd.DataFrame(rows, columns=["item", "order", "pred", "truth", "k", "permutation"])


def test_position_bias_consistency_and_order_average_by_hand():
    records = _hand_records()
    pb = O.position_bias(records)
    # Five answered records with a valid permutation; answers at positions 1,1,1,2,1; targets at 1,3,1,2,1.
    assert pb["records"] == 5 and pb["invalid_permutation"] == 1 and pb["unanswered"] == 0
    assert [r["model_share"] for r in pb["by_position"]] == pytest.approx([0.8, 0.2, 0.0])
    assert [r["target_share"] for r in pb["by_position"]] == pytest.approx([0.6, 0.2, 0.2])
    assert pb["tv"] == pytest.approx(0.2)
    section, items, p = O.order_report(records, "shuffled:2")
    # Item 0: modal answers 0 and 2 (inconsistent); item 1: 1 and 1 (consistent); item 2: no answer under order 0.
    assert section["consistency"] == {"items": 2, "items_missing_an_order": 1, "consistency": 0.5}
    assert items["item"].tolist() == [0, 1, 2]
    assert p.tolist() == [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    md = "\n".join(O.order_markdown(section))
    assert "| 1 | 0.800 | 0.600 |" in md and "| 3 | 0.000 | 0.200 |" in md
    assert "Position-bias TV 0.200 over 5 answered record(s); 0 unanswered, 1 with no valid permutation" in md
    assert "Cross-order consistency: 0.500 (the share of the 2 item(s) that give the same modal answer" in md


def test_cli_refuses_an_unknown_order_in_one_line(capsys):
    from dvmap_verl.cli import main

    code = main(["eval", "--backend", "openai", "--model", "m", "--data", "x.parquet", "--out", "o",
                 "--option-order", "sideways"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--option-order 'sideways'" in err[0]


def _imported_items(tmp_path, name, csv_text, fname, template=None):
    """The items import-benchmark writes, as the dicts OrderPlan sees (``item``, ``messages`` JSON)."""
    from dvmap_verl.data.benchmarks import import_benchmark

    src = tmp_path / fname
    src.write_text(csv_text)
    stats = import_benchmark(name, src, tmp_path / "out", template=template)
    table = pd.read_parquet(tmp_path / "out" / stats["items_file"])
    return [{**e, "item": i, "messages": json.dumps([dict(m) for m in p])}
            for i, (p, e) in enumerate(zip(table["prompt"], table["extra_info"]))]


def test_an_imported_goqa_item_is_rerendered_with_its_own_template(tmp_path):
    # "No" occurs inside "Norway": the text-swap fallback refused this item
    csv = ('question,selections,options,source\n"Should Norway join the EU?",'
           '"{\'Norway\': [0.3, 0.7]}","[\'Yes\', \'No\']",GAS\n')
    (item,) = _imported_items(tmp_path, "globalopinionqa", csv, "goqa.csv")
    user = json.loads(O.permuted_messages(item, (1, 0)))[-1]["content"]
    assert user == ("Should Norway join the EU?\n\nHere are the options:\n(A) No\n(B) Yes\n\n"
                    "If you had to select one of the options, what would your answer be? "
                    "Answer with the text of one option inside <answer></answer> tags.")
    plan = O.OrderPlan(pd.DataFrame([item]), "reversed", seed=0, samples=1)
    assert plan.request_messages(0, 0)[-1]["content"] == user


def test_an_imported_subpop_qa_item_is_rerendered_with_lettered_options(tmp_path):
    csv = ("qkey,attribute,group,question,responses,refusal_rate,options,ordinal\n"
           "parks,Party,Democrat,Fund parks?,\"[0.5, 0.3, 0.2]\",0.0,\"['A', 'B', 'C']\",\"[1, 2, 3]\"\n")
    (item,) = _imported_items(tmp_path, "subpop", csv, "subpop.csv")
    user = json.loads(O.permuted_messages(item, (2, 1, 0)))[-1]["content"]
    # options named A, B, C under letters A., B., C.: each option text occurs many times, yet the template renders
    assert "Question: Fund parks?\nA. C\nB. B\nC. A\n\nAnswer with the text" in user
