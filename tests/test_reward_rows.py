"""The reward on any row: whatever a dataset holds in ground truth, options, extra_info and frequency, and whatever
the model wrote, compute_score returns the same finite keys and never raises (it runs inside other people's
training loops). Each unjudgeable row has one documented, bounded result."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvmap_verl.reward import DEFAULT_BETA, SCORE_KEYS, VARIANTS, compute_score

AGREE4 = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]
GOOD = "<reasoning>\nr\n</reasoning>\n<answer>\nAgree\n</answer>"


def unscorable(out, fmt=1.0, beta=DEFAULT_BETA):
    return out == {"score": pytest.approx(beta * fmt), "acc": 0.0, "format": fmt, "parsed": 0.0, "likert": 0.0}


@pytest.mark.parametrize("ground_truth", [None, "", "   ", float("nan"), "Maybe", b"Maybe"])
def test_unusable_ground_truth_scores_format_only(ground_truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert unscorable(compute_score("wvs", GOOD, ground_truth, {"options": AGREE4}))


@pytest.mark.parametrize("options", [
    ["Agree", None, "Disagree"],
    ["Agree", float("nan")],
    np.array(["Agree", None], dtype=object),
    [["Agree"], "Disagree"],  # unhashable entry
    "x, " * 4_000_000,  # a 12 MB options string
    ["o"] * 10_000,
    12345,
])
def test_broken_options_score_format_only_in_bounded_time(options):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = compute_score("wvs", GOOD, "Agree", {"options": options})
    assert time.perf_counter() - t0 < 0.5  # refused before any work proportional to its size
    assert unscorable(out)


@pytest.mark.parametrize("options", [
    np.array(AGREE4, dtype=object),                      # what verl hands over from parquet
    np.array(", ".join(AGREE4), dtype=object),           # a 0-d array holding the release's joined string
    ", ".join(AGREE4),
    tuple(AGREE4),
    [o.encode() for o in AGREE4],
])
def test_option_containers_that_hold_good_options(options):
    out = compute_score("wvs", GOOD, "Agree", {"options": options})
    assert out["acc"] == 1.0 and out["likert"] == 1.0


@pytest.mark.parametrize("extra_info", [None, [], ["Agree"], "Agree, Disagree", 3, {}])
def test_extra_info_of_any_type(extra_info):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = compute_score("wvs", GOOD, "Agree", extra_info)
    # Without usable options the ground truth alone is recognised.
    assert out["acc"] == 1.0 and out["parsed"] == 1.0


def test_empty_options_compare_with_the_truth_alone():
    assert compute_score("wvs", GOOD, "Agree", {"options": []})["acc"] == 1.0
    assert compute_score("wvs", GOOD, "Disagree", {"options": np.array([], dtype=object)})["acc"] == 0.0


def test_bad_rows_warn_once_naming_the_field():
    import dvmap_verl.reward as R

    R._warned_rows.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            compute_score("wvs", GOOD, "Maybe", {"options": AGREE4})
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "'Maybe' is not one of the options" in messages[0]


# ---------------------------------------------------------------------------------------- the whole row, fuzzed

_text = st.text(max_size=60)
_scalar = st.one_of(st.none(), _text, st.floats(allow_nan=True), st.integers(), st.booleans(), st.binary(max_size=8))
_option_lists = st.one_of(
    st.lists(st.sampled_from(AGREE4 + ["Low", "Medium", "High", ""]), max_size=6),
    st.lists(_scalar, max_size=6),
    st.lists(_scalar, max_size=6).map(lambda v: np.array(v, dtype=object)),
    _text,
    _scalar,
)
_extra = st.one_of(
    st.none(), _scalar, st.lists(_scalar, max_size=3),
    st.fixed_dictionaries({}, optional={"options": _option_lists, "Options": _option_lists,
                                        "frequency": st.one_of(_scalar, st.floats(-5, 5))}),
)
_completion = st.one_of(
    _text,
    st.builds(lambda a, tail: f"<reasoning>x</reasoning><answer>{a}</answer>{tail}",
              st.one_of(st.sampled_from(AGREE4), _text), _text),
    st.builds(lambda a: f"<ANSWER>{a}", _text),
    st.none(), st.integers(), st.binary(max_size=20),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completion=_completion, ground_truth=st.one_of(_scalar, st.sampled_from(AGREE4)), extra=_extra,
       variant=st.sampled_from(sorted(VARIANTS)), beta=st.one_of(st.floats(0, 2), st.sampled_from(["0.4", "1"])))
def test_any_row_gives_finite_bounded_scores(completion, ground_truth, extra, variant, beta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = compute_score("dvmap/train", completion, ground_truth, extra, variant=variant, beta=beta)
    assert tuple(out) == SCORE_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    b = float(beta)
    # The largest credit any variant gives is 2 (gaussian: 1 + 1; reference: 2.0 + 0.8), plus the format term.
    assert 0.0 <= out["score"] <= 2.0 + max(b, 0.8) + 1e-9
    for key in ("acc", "format", "parsed", "likert"):
        assert 0.0 <= out[key] <= 1.0
