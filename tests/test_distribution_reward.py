"""Distribution-anchored GRPO: the stated-distribution parser, the rps reward (values, properness, robustness,
through verl's reward loop), the data targets and the verbalised readout end to end."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from dvmap_verl.reward import SCORE_KEYS, compute_score, score
from dvmap_verl.reward.distribution import (format_distribution, parse_distribution, ranked_probability_score,
                                            target_distribution)

AGREE4 = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]
LOW3 = ["Low", "Medium", "High"]

# (answer text, options, expected probabilities or None)
PARSER_TABLE = [
    ("Strongly agree: 0.1\nAgree: 0.35\nDisagree: 0.4\nStrongly disagree: 0.15", AGREE4, [0.1, 0.35, 0.4, 0.15]),
    ("Strongly agree: 10%\nAgree: 35%\nDisagree: 40%\nStrongly disagree: 15%", AGREE4, [0.1, 0.35, 0.4, 0.15]),
    ("Strongly agree: 10\nAgree: 35\nDisagree: 40\nStrongly disagree: 15", AGREE4, [0.1, 0.35, 0.4, 0.15]),
    ("Low: 0.2\nHigh: 0.8", LOW3, [0.2, 0.0, 0.8]),  # a missing option is 0
    ("Low: 0.25\nMedium: 0.25\nHigh: 0.45", LOW3, [0.25 / 0.95, 0.25 / 0.95, 0.45 / 0.95]),  # renormalised
    ("1: 0.5\n2: 0.3\n3: 0.2", LOW3, [0.5, 0.3, 0.2]),  # option numbers
    ("- low = .5\n- medium = .5", LOW3, [0.5, 0.5, 0.0]),  # bullets, '=', case, leading dot
    ("**Low**: 1.0", LOW3, [1.0, 0.0, 0.0]),  # markdown emphasis, as the resolver reads it
    ('{"Low": 0.6, "High": 0.4}', LOW3, [0.6, 0.0, 0.4]),
    ('"Low": 0.6, "High": 0.4', LOW3, [0.6, 0.0, 0.4]),  # JSON without braces
    ("Reasoning: devout and rural\nLow: 0.7\nMedium: 0.3", LOW3, [0.7, 0.3, 0.0]),  # a line with no number
    ("Low: 0.5, \nMedium: 0.5;", LOW3, [0.5, 0.5, 0.0]),  # trailing separators
    # Refused: format credit only.
    ("Low: 0.5\nLow: 0.5", LOW3, None),  # an option twice
    ("Low: -0.2\nHigh: 1.2", LOW3, None),  # negative
    ("Low: 0.2\nHigh: 0.2", LOW3, None),  # sums to 0.4
    ("Low: 1e400", LOW3, None),  # infinite
    ("Maybe: 1.0", LOW3, None),  # names no option
    ("Medium", LOW3, None),  # a point answer is not a distribution
    ("", LOW3, None),
    ("Low: 0.5\nMedium: 0.5", [], None),  # no options
    ("Low: 0.4\n" * 80, LOW3, None),  # over the line bound
    ("{not json", LOW3, None),
    ('{"Low": [1]}', LOW3, None),
    ('{"Low": true}', LOW3, None),
    ("x" * 5000 + "\nLow: 1", LOW3, None),  # over the size bound
]


IMP = ["Very important", "Rather important", "Not very important", "Not at all important"]
_Q = [0.6, 0.3, 0.1, 0.0]

# The shapes models write (issue 20): (answer text, expected probabilities over IMP, or None when ambiguous).
SHAPE_TABLE = [
    ('```json {"Very important": 0.6, "Rather important": 0.3, "Not very important": 0.1} ```', _Q),
    ('```json\n{\n  "Very important": 0.6,\n  "Rather important": 0.3,\n  "Not very important": 0.1\n}\n```', _Q),
    ('Here is my estimate:\n```\n{"Very important": 60, "Rather important": 30, "Not very important": 10}\n```', _Q),
    ("Very important: 0.6\r\nRather important: 0.3\r\nNot very important: 0.1\r\n", _Q),  # CRLF
    ("| Option | Probability |\n|---|---|\n| Very important | 0.6 |\n| Rather important | 0.3 |\n"
     "| Not very important | 0.1 |\n| Not at all important | 0 |", _Q),  # markdown table with a header row
    ("| Very important | 60% |\n| Rather important | 30% |\n| Not very important | 10% |", _Q),  # without one
    ("Very important: 0.6, Rather important: 0.3, Not very important: 0.1", _Q),  # one line, commas
    ("Very important = 60%; Rather important = 30%; Not very important = 10%", _Q),  # semicolons, '='
    ("Very important: 0.6.\nRather important: 0.3.\nNot very important: 0.1.", _Q),  # trailing dots
    ("- **Very important**: 0.6\n- **Rather important**: 0.3\n- **Not very important**: 0.1", _Q),  # bullets, bold
    ("* **Very important:** 60%\n* **Rather important:** 30%\n* **Not very important:** 10%", _Q),
    ("\u2022 Very important \u2013 60%\n\u2022 Rather important \u2013 30%\n\u2022 Not very important \u2013 10%", _Q),
    ("1. Very important: 0.6\n2. Rather important: 0.3\n3. Not very important: 0.1", _Q),  # numbered lines
    ("Very important 60%, Rather important 30%, Not very important 10%", _Q),  # no separator
    ("Very important: 60 %\nRather important: 30 %\nNot very important: 10 %", _Q),
    ("Reasoning: she is devout, 60 years old.\nVery important: 0.6\nRather important: 0.3\n"
     "Not very important: 0.1", _Q),  # prose beside the entries
    ("\uff36ery important: 0.6\nRather important: 0.3\nNot very important: 0.1", _Q),  # NFKC
    # A checksum line (label exactly total/sum): skipped when it is the entries' sum.
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: 1.0", _Q),
    ("Very important: 60%\nRather important: 30%\nNot very important: 10%\nTotal: 100%", _Q),
    ("Very important: 0.6, Rather important: 0.3, Not very important: 0.1, Sum = 1", _Q),
    ("- **Very important**: 0.6\n- **Rather important**: 0.3\n- **Not very important**: 0.1\n- **Total**: 1.0", _Q),
    ("| Very important | 60% |\n| Rather important | 30% |\n| Not very important | 10% |\n| **Total** | 100% |", _Q),
    ("Very important: 60\nRather important: 30\nNot very important: 10\nTOTAL: 100", _Q),  # % without the sign
    ('{"Very important": 0.6, "Rather important": 0.3, "Not very important": 0.1, "total": 1}', _Q),
    # Refused: ambiguous.
    ("Very important: 0.6\nvery important: 0.3\nNot very important: 0.1", None),  # an option twice
    ("Very important: 0.6, Rather important: 0.3, Important: 0.1", None),  # a label naming no option
    ("Very important: 0.6, Rather important: 0.1", None),  # sums to 0.7
    ("Very important: 60%, Rather important: 70%", None),  # sums to 1.3
    ('```json {"Very important": 0.6, "Rather important": "a lot"} ```', None),
    ("| Very important | 0.6 |\n| Very important | 0.4 |", None),
    ("Not very important or very important: 1.0", None),  # a label naming two options
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: 0.5", None),  # not the sum
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: -1", None),
    # a non-finite checksum or entry refuses the answer (it was skipped as prose, so the rest was accepted)
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: inf", None),
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: nan", None),
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nSum = -inf", None),
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nNot at all important: nan", None),
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal: 1\nSum: 2", None),
    ("Total: 1.0", None),  # a checksum alone is no distribution
    ("Very important: 0.6\nRather important: 0.3\nNot very important: 0.1\nTotal probability: 1.0",
     None),  # the label is not exactly total: a label naming no option
]


@pytest.mark.parametrize("text,expected", SHAPE_TABLE)
def test_distribution_shapes(text, expected):
    got = parse_distribution(text, IMP)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "word " * 800,  # one 4 KB paragraph without a separator: the old line regex backtracked over it (~750 ms)
    "a:" * 2000,
    "Very important " * 270,
    "Very important: 0.6, " * 190,
    "| " * 2000,
    "```" * 1300,
    " " * 4000 + "x",
])
def test_parser_is_linear_on_4kb_answers(text):
    assert len(text) <= 4096
    t0 = time.perf_counter()
    for _ in range(10):
        assert parse_distribution(text, IMP) is None
    assert (time.perf_counter() - t0) / 10 < 0.01  # linear: ~0.1 ms; the old regex took ~750 ms on the first


def test_the_scan_is_linear_beyond_the_size_bound():
    """The entry scan itself (below the 4 KB bound) is linear: 64 KB of entries or of separators in 0.25 s."""
    from dvmap_verl.reward.distribution import _pairs

    for text in ("Low: 0.1\n" * 7000, ":" * 65536, "word " * 13000, "| a | 0.1 |\n" * 5000):
        t0 = time.perf_counter()
        _pairs(text)
        assert time.perf_counter() - t0 < 0.25


@pytest.mark.parametrize("text,options,expected", PARSER_TABLE)
def test_parser_table(text, options, expected):
    got = parse_distribution(text, options)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parser_never_raises_on_non_text():
    for bad in (None, 3, b"Low: 1", ["Low: 1"], float("nan")):
        assert parse_distribution(bad, LOW3) is None


def test_rps_by_hand():
    # CDF gaps (1, 1) -> 2; (0.5, 0) -> 0.25; equal -> 0.
    assert ranked_probability_score([1, 0, 0], [0, 0, 1]) == pytest.approx(2.0)
    assert ranked_probability_score([0.5, 0.5, 0], [0, 1, 0]) == pytest.approx(0.25)
    assert ranked_probability_score([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0
    # The reward: 1 - RPS / (K - 1) + beta * format. Target (0, 1, 0), answer (.4, .6, 0): CDF gaps (.4, 0) ->
    # RPS .16 -> 1 - .16 / 2 = .92; the argmax (Medium) is the truth.
    text = "<reasoning>r</reasoning><answer>\nLow: 0.4\nMedium: 0.6\n</answer>"
    out = score(text, "Medium", LOW3, variant="rps", beta=0.4)
    assert out == {"score": pytest.approx(0.92 + 0.4), "acc": 1.0, "format": 1.0, "parsed": 1.0, "likert": 1.0}
    # Against a stated target: extra_info.target wins over the truth's point mass.
    out = score(text, "Medium", LOW3, variant="rps", beta=0.0, extra={"target": [0.4, 0.6, 0.0]})
    assert out["score"] == pytest.approx(1.0)
    # Counts serve when there is no target.
    out = score(text, "Medium", LOW3, variant="rps", beta=0.0, extra={"counts": [2, 3, 0]})
    assert out["score"] == pytest.approx(1.0)
    # A point answer under rps: format credit only.
    assert score("<answer>Medium</answer>", "Medium", LOW3, variant="rps", beta=0.4) == {
        "score": pytest.approx(0.2), "acc": 0.0, "format": 0.5, "parsed": 0.0, "likert": 0.0}


def test_target_fallbacks():
    assert target_distribution({"target": [0.2, 0.8]}, 0, 2) == ([0.2, 0.8], "target")
    assert target_distribution({"target": [1, 1, 1]}, 0, 2)[1] == "point"  # wrong length
    assert target_distribution({"target": "0.5,0.5", "counts": [1, 3]}, 0, 2) == ([0.25, 0.75], "counts")
    assert target_distribution({"target": [float("nan"), 1]}, 1, 2) == ([0.0, 1.0], "point")
    assert target_distribution(None, 1, 3) == ([0.0, 1.0, 0.0], "point")
    assert target_distribution({"counts": np.array([0, 2, 2])}, 0, 3) == ([0.0, 0.5, 0.5], "counts")


def _reward(p, t, k):
    return 1 - ranked_probability_score(p, t) / (k - 1)


def test_properness_expected_reward_is_maximised_at_the_truth():
    """For targets drawn as point masses from q (consensus rows of one cell), the expected reward over a grid of
    stated distributions is maximised exactly at p = q, through the reward function as the trainer calls it."""
    grid = [np.array(c) / 10 for c in itertools.product(range(11), repeat=3) if sum(c) == 10]
    rng = np.random.default_rng(0)
    for _ in range(12):
        q = grid[rng.integers(len(grid))]
        best, best_p = -math.inf, None
        for p in grid:
            text = "<reasoning>r</reasoning><answer>\n" + format_distribution(LOW3, p) + "\n</answer>"
            expected = sum(q[j] * compute_score("dvmap/train", text, LOW3[j], {"options": LOW3}, variant="rps",
                                                 beta=0.0)["score"] for j in range(3))
            if expected > best + 1e-12:
                best, best_p = expected, p
        assert np.allclose(best_p, q), (q, best_p)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5), st.lists(st.floats(0.0, 1.0), min_size=5,
                                                                          max_size=5))
def test_properness_against_a_stated_target(target_weights, other):
    """With a distribution target t, any other p scores strictly less than t itself (RPS is strictly proper)."""
    k = len(target_weights)
    t = np.array(target_weights) / sum(target_weights)
    p = np.array(other[:k]) + 1e-3
    p = p / p.sum()
    options = [f"Option {chr(65 + i)}" for i in range(k)]
    extra = {"options": options, "target": t.tolist()}

    def reward(dist):
        text = "<answer>\n" + "\n".join(f"{o}: {x:.6f}" for o, x in zip(options, dist)) + "\n</answer>"
        return compute_score("dvmap/train", text, options[0], extra, variant="rps", beta=0.0)["score"]

    at_truth = reward(t)
    assert at_truth == pytest.approx(1.0, abs=1e-5)
    if np.abs(np.cumsum(p) - np.cumsum(t)).max() > 1e-3:
        assert reward(p) < at_truth


_piece = st.one_of(st.sampled_from(["Low", "Medium", "High", "1", "2", "3", ": ", "=", "%", "\n", ", ", '"', "{", "}",
                                    "-", "\u2022", "nan", "inf", "1e9", "0.", ".5", "-0.3", "**"]),
                   st.text(max_size=4))
_text = st.lists(_piece, max_size=40).map("".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completion=st.one_of(_text.map(lambda t: f"<reasoning>x</reasoning><answer>{t}</answer>"), _text,
                            st.none(), st.integers()),
       ground_truth=st.one_of(st.sampled_from(LOW3), st.none(), st.text(max_size=5), st.floats()),
       target=st.one_of(st.none(), st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
                                            max_size=5), st.text(max_size=5), st.integers()),
       options=st.one_of(st.just(LOW3), st.just(", ".join(LOW3)), st.none(), st.lists(st.text(max_size=4),
                                                                                      max_size=4)))
def test_rps_reward_never_raises_and_stays_finite(completion, ground_truth, target, options):
    out = compute_score("dvmap/train", completion, ground_truth, {"options": options, "target": target},
                        variant="rps")
    assert set(out) == set(SCORE_KEYS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert -0.01 <= out["score"] <= 1.0 + 0.4 + 1e-9


def test_rps_through_verls_reward_manager(tiny_tokenizer_dir):
    from verl.trainer.ppo.reward import load_reward_manager

    from dvmap_verl.training.dryrun import compose_ppo_config, rollout_batch

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    config = compose_ppo_config(["reward.custom_reward_function.path=pkg://dvmap_verl.reward",
                                 "reward.custom_reward_function.name=compute_score",
                                 "+reward.custom_reward_function.reward_kwargs.variant=rps"])
    manager = load_reward_manager(config, tokenizer)
    target = [0.1, 0.6, 0.3]
    completions = [
        "<reasoning>\nr\n</reasoning>\n<answer>\nLow: 0.1\nMedium: 0.6\nHigh: 0.3\n</answer>",  # = target
        "<reasoning>\nr\n</reasoning>\n<answer>\nLow: 1.0\n</answer>",  # far off
        "<reasoning>\nr\n</reasoning>\n<answer>\nMedium\n</answer>",  # a point answer
    ]
    rows = [{"data_source": "dvmap/train", "reward_model": {"style": "rule", "ground_truth": "Medium"},
             "extra_info": {"options": LOW3, "target": target, "counts": [1, 6, 3], "n": 10}}] * 3
    data = rollout_batch(tokenizer, ["Q"] * 3, completions, rows)
    scores = []
    for i in range(3):
        out = manager.loop.run_until_complete(manager.run_single(data[i: i + 1]))
        assert set(out["reward_extra_info"]) == set(SCORE_KEYS)
        scores.append(out["reward_score"])
    expected_far = 1 - ranked_probability_score([1, 0, 0], target) / 2 + 0.4
    assert scores[0] == pytest.approx(1.4) and scores[1] == pytest.approx(expected_far) and scores[2] == \
        pytest.approx(0.4)


# --------------------------------------------------------------------------------------------- data and readout


def test_prepare_with_distribution_targets(tiny_tokenizer_dir, tmp_path):
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs

    synth.write(synth.generate(3000, seed=0), tmp_path / "wvs.csv")
    out = tmp_path / "out"
    stats = prepare_wvs(tmp_path / "wvs.csv", out, template="distribution", targets="distribution",
                        target_smoothing=0.2, consensus="all", quiet=True)
    assert stats["targets"] == "distribution" and stats["target_smoothing"] == 0.2
    train = pd.read_parquet(out / "train.parquet")
    extra = pd.DataFrame(list(train["extra_info"]))
    assert "estimate how people who share the character's background answer" in train["prompt"][0][-1]["content"]
    disagree = extra["counts"].map(lambda c: (np.asarray(c) > 0).sum() >= 2)
    assert disagree.any() and (~disagree).any()  # --consensus all keeps the H > 0 profiles in training
    # The coarse cells, read from distributions.parquet (not from the code that mixed the targets).
    dist = pd.read_parquet(out / "distributions.parquet")
    coarse = dist[dist["level"] == "coarse"].set_index(["country", "gender", "life_stage", "q_id"])["counts"]
    smoothed = 0
    for row in extra.itertuples():
        c, t = np.asarray(row.counts, float), np.asarray(row.target)
        assert len(t) == len(c) == len(row.options) and row.n == c.sum()
        if (c > 0).sum() >= 2:
            expected = c / c.sum()  # a disagreeing profile: its own counts, unsmoothed
        else:  # a consensus row: (1 - 0.2) * its point mass + 0.2 * its (country, gender, life stage, question) cell
            cell = np.asarray(coarse[(row.country, row.gender, row.life_stage, row.q_id)], float)
            expected = 0.8 * np.eye(len(c))[row.answer_index] + 0.2 * cell / cell.sum()
            smoothed += not np.allclose(cell / cell.sum(), np.eye(len(c))[row.answer_index])
        assert np.allclose(t, expected), (row.Index, t, expected)
    assert smoothed > 100  # cells that differ from the point mass: smoothing left out would fail above
    # verl's own dataset class reads the rows, target included.
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    ds = RLHFDataset(str(out / "train.parquet"), tok, OmegaConf.create({
        "prompt_key": "prompt", "max_prompt_length": 8192, "filter_overlong_prompts": False,
        "cache_dir": str(tmp_path / "cache")}))
    row = ds[0]
    assert len(row["extra_info"]["target"]) == len(row["extra_info"]["options"])


def test_release_targets_fall_back_to_the_cell_distribution(release_dev_path, tmp_path):
    from dvmap_verl.data.release import prepare_release

    stats = prepare_release(release_dev_path, tmp_path / "o", targets="distribution", quiet=True)
    assert "no respondent data" in stats["targets"]
    verl = pd.read_parquet(tmp_path / "o" / "val.parquet")
    extra = pd.DataFrame(list(verl["extra_info"]))
    # Each row's target is its cell's answer distribution: its own answer's share is the release's frequency.
    own = [t[a] for t, a in zip(extra["target"], extra["answer_index"])]
    assert np.allclose(own, extra["frequency"])
    assert np.allclose(extra["target"].map(sum), 1.0)


def _stated(options):
    """A model that states a distribution: 60% on the first option, the rest spread evenly, in percent."""
    k = len(options)
    probs = [60.0] + [40.0 / (k - 1)] * (k - 1)
    return "<reasoning>\nserved\n</reasoning>\n<answer>\n" + "\n".join(
        f"{o}: {p:.4f}%" for o, p in zip(options, probs)) + "\n</answer>"


def test_verbalised_readout_end_to_end(tmp_path):
    """Prepare with targets, score completions with the reward, and evaluate a model that states distributions
    (served over the OpenAI API: a tiny HF model cannot learn the format in CI time): the run is read as stated
    distributions, with Acc, LC and WD from their argmax, and sits in dvmap compare beside a point-answer run."""
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs
    from dvmap_verl.evaluation.backends import make_backend
    from dvmap_verl.evaluation.compare import compare_runs
    from dvmap_verl.evaluation.evaluate import EvalConfig, read_predictions, run_eval
    from dvmap_verl.evaluation.report import build_report
    from fake_openai import FakeServer

    synth.write(synth.generate(3000, seed=1), tmp_path / "wvs.csv")
    data = tmp_path / "data"
    prepare_wvs(tmp_path / "wvs.csv", data, template="distribution", targets="distribution", quiet=True)
    val = pd.read_parquet(data / "val.parquet")
    # The reward over prepared rows: the target itself earns the most.
    row = val.iloc[0]
    extra = dict(row["extra_info"])
    options = list(extra["options"])
    truth = row["reward_model"]["ground_truth"]
    best = f"<reasoning>r</reasoning><answer>\n{format_distribution(options, extra['target'])}\n</answer>"
    worse = "<reasoning>r</reasoning><answer>\n" + format_distribution(options, [1 / len(options)] * len(options)) \
        + "\n</answer>"
    assert compute_score("dvmap/val", best, truth, extra, variant="rps")["score"] > \
        compute_score("dvmap/val", worse, truth, extra, variant="rps")["score"]

    runs = {}
    for name, reply in (("stated", _stated), ("point", None)):
        config = EvalConfig(backend="openai", model="fake", data=[str(data / "val.parquet")], limit=40, samples=2)
        with FakeServer(fail_every=0, reply=reply) as server:
            backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url)
            assert run_eval(backend, tmp_path / name, config, quiet=True)["failed"] == 0
        runs[name] = tmp_path / name
    preds = read_predictions(runs["stated"] / "predictions.jsonl")
    assert (preds["readout"] == "verbalised").all() and len(preds) == 80
    for rec in preds.itertuples():
        assert rec.probs[0] == pytest.approx(0.6, abs=1e-5) and sum(rec.probs) == pytest.approx(1.0) and rec.pred == 0
    report = build_report(runs["stated"], bootstrap=0, importance=False)
    dist = report["distributional"]
    assert dist["readout"] == "verbalised" and dist["model"]["unreadable_items"] == 0
    items = pd.read_parquet(runs["stated"] / "items.parquet")
    assert dist["model"]["expected_acc"] == pytest.approx(abs=1e-5, expected=
        np.mean([0.6 if t == 0 else 0.4 / (len(o) - 1) for t, o in zip(items["truth"], items["options"])]))
    assert report["model"]["acc"] == pytest.approx((items["truth"] == 0).mean())  # the argmax is the first option
    assert "## Distributional" in (runs["stated"] / "report.md").read_text()
    # The same table as point-answer models: both runs answer the first option, so Acc is identical.
    cmp = compare_runs([runs["point"], runs["stated"]], tmp_path / "cmp", bootstrap=100)
    assert cmp["differences"][0]["d_acc"] == pytest.approx(0.0)
