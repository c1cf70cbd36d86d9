"""The DVMap reward as a pure function: resolution of answers to options, variants, and adversarial output."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvmap_verl.reward.answers import extract_answer, release_correct, resolve_answer
from dvmap_verl.reward import DEFAULT_BETA, SCORE_KEYS, VARIANTS, compute_score

AGREE4 = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]
AGREE5 = ["Agree strongly", "Agree", "Neither agree nor disagree", "Disagree", "Disagree strongly"]
IMPORTANT = ["Very important", "Rather important", "Not very important", "Not at all important"]
LMH = ["Low", "Medium", "High"]


def wrap(answer: str, reasoning: str = "Her faith matters.") -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"


@pytest.mark.parametrize(
    "answer, options, expected",
    [
        ("Agree", AGREE4, 1),
        ("Strongly agree", AGREE4, 0),
        ("Disagree", AGREE4, 2),
        ("strongly DISAGREE", AGREE4, 3),
        (" Very important. ", IMPORTANT, 0),
        ("**Not very important**", IMPORTANT, 2),
        ('"Rather important"', IMPORTANT, 1),
        ("Answer: Not at all important", IMPORTANT, 3),
        ("Agree strongly", AGREE5, 0),
        ("Disagree strongly", AGREE5, 4),
        ("Neither agree nor disagree", AGREE5, 2),
        ("I would say agree", AGREE4, 1),
        ("B", AGREE4, 1),
        ("(c)", AGREE4, 2),
        ("option 4", AGREE4, 3),
        ("2. Agree", AGREE4, 1),
        ("3. Agree", AGREE4, None),  # label and text disagree
        ("Agree or Disagree", AGREE4, None),  # two options named
        ("Very important, Rather important", IMPORTANT, None),
        ("Medium-high", LMH, None),
        ("7", LMH, None),  # a scale point, not an option number
        ("agreed", AGREE4, None),
        ("", AGREE4, None),
        (None, AGREE4, None),
    ],
)
def test_resolve_answer(answer, options, expected):
    assert resolve_answer(answer, options) == expected
    # The release's comma-joined string resolves the same way as a list.
    assert resolve_answer(answer, ", ".join(options)) == expected


def test_extract_last_block_and_truncation():
    assert extract_answer("<answer>Agree</answer> later <answer>Disagree</answer>") == "Disagree"
    assert extract_answer("<ANSWER>Agree</ANSWER>").strip().lower() == "agree"
    assert extract_answer("<answer>Agree") == "Agree"  # truncated: no closing tag
    assert extract_answer("no tags here") is None
    assert extract_answer(None) is None


def test_binary_reward_is_paper_formula():
    extra = {"options": IMPORTANT}
    full = compute_score("wvs", wrap("Very important."), "Very important", extra)
    assert full == {"score": 1 + DEFAULT_BETA, "acc": 1.0, "format": 1.0, "parsed": 1.0, "likert": 1.0}
    wrong = compute_score("wvs", wrap("Not at all important"), "Very important", extra)
    assert wrong["acc"] == 0.0 and wrong["score"] == pytest.approx(DEFAULT_BETA)
    assert wrong["likert"] == 0.0
    no_reasoning = compute_score("wvs", "<answer>Very important</answer>", "Very important", extra)
    assert no_reasoning["format"] == 0.5 and no_reasoning["score"] == pytest.approx(1 + DEFAULT_BETA / 2)
    beta0 = compute_score("wvs", wrap("Very important"), "Very important", extra, beta=0.0)
    assert beta0["score"] == 1.0


def test_beta_keeps_release_ratio():
    # The release pays 0.8 for format against 2.0 for the answer.
    assert DEFAULT_BETA / 1.0 == pytest.approx(0.8 / 2.0)


def test_release_options_string_and_key():
    out = compute_score("wvs", wrap("agree"), "Agree", {"Options": ", ".join(AGREE4)})
    assert out["acc"] == 1.0


def test_reference_variant_reproduces_release_quirks():
    extra = {"Options": ", ".join(IMPORTANT)}
    # Observed in the release: trailing punctuation gets format credit only.
    out = compute_score("wvs", "<reasoning>x</reasoning><answer> Very important. </answer>", "Very important", extra,
                        variant="reference")
    assert out["score"] == pytest.approx(0.8) and out["acc"] == 0.0
    exact = compute_score("wvs", "<reasoning>x</reasoning><answer>Very important</answer>", "Very important", extra,
                          variant="reference")
    assert exact["score"] == pytest.approx(2.8)
    # Only the last 300 characters are searched.
    far = "<answer>Very important</answer>" + "x" * 400
    assert compute_score("wvs", far, "Very important", extra, variant="reference")["acc"] == 0.0
    # Our default resolves it.
    assert compute_score("wvs", far, "Very important", extra)["acc"] == 1.0


def test_distance_variant_uses_option_index():
    extra = {"options": AGREE4}
    adj = compute_score("wvs", wrap("Agree"), "Strongly agree", extra, variant="distance", beta=0.0)
    assert adj["score"] == pytest.approx(1 - 1 / 3)
    far = compute_score("wvs", wrap("Strongly disagree"), "Strongly agree", extra, variant="distance", beta=0.0)
    assert far["score"] == pytest.approx(0.0)


def test_gaussian_variant():
    extra = {"options": AGREE4}
    exact = compute_score("wvs", wrap("Agree"), "Agree", extra, variant="gaussian", beta=0.0)
    assert exact["score"] == pytest.approx(2.0)
    adj = compute_score("wvs", wrap("Disagree"), "Agree", extra, variant="gaussian", beta=0.0)
    assert adj["score"] == pytest.approx(math.exp(-(1 / 3) ** 2 / (2 * 0.25**2)))


def test_frequency_variant():
    extra = {"options": AGREE4, "frequency": 0.75}
    out = compute_score("wvs", wrap("Agree"), "Agree", extra, variant="frequency", beta=0.0)
    assert out["score"] == pytest.approx(0.25)
    # A row without a usable frequency cannot stop a training loop: plain binary credit, warned about once.
    for bad in ({"options": AGREE4}, {"options": AGREE4, "frequency": float("nan")},
                {"options": AGREE4, "frequency": "n/a"}):
        assert compute_score("wvs", wrap("Agree"), "Agree", bad, variant="frequency", beta=0.0)["score"] == 1.0
    over = {"options": AGREE4, "frequency": 1.7}  # clipped to 1: a correct answer then earns nothing
    assert compute_score("wvs", wrap("Agree"), "Agree", over, variant="frequency", beta=0.0)["score"] == 0.0


def test_format_tag_presets():
    text = "<think>hmm</think><answer>Agree</answer>"
    assert compute_score("wvs", text, "Agree", {"options": AGREE4}, format_tags="qwen3")["format"] == 1.0
    assert compute_score("wvs", text, "Agree", {"options": AGREE4})["format"] == 0.5
    assert compute_score("wvs", text, "Agree", {"options": AGREE4}, format_tags=["<answer>"])["format"] == 1.0


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown reward variant 'nope'"):
        compute_score("wvs", "x", "Agree", {"options": AGREE4}, variant="nope")
    with pytest.raises(ValueError, match=r"beta='lots' is not a number"):
        compute_score("wvs", "x", "Agree", {"options": AGREE4}, beta="lots")
    with pytest.raises(ValueError, match=r"sigma=0 must be finite and > 0"):
        compute_score("wvs", "x", "Agree", {"options": AGREE4}, variant="gaussian", sigma=0)
    # Hydra overrides can pass numbers as strings.
    assert compute_score("wvs", wrap("Agree"), "Agree", {"options": AGREE4}, beta="0.5")["score"] == 1.5
    assert compute_score("wvs", wrap("Agree"), "Agree", {"options": AGREE4}, variant="gaussian",
                         sigma="0.25")["score"] == pytest.approx(2.4)


def test_without_options_compares_with_truth():
    assert compute_score("other", wrap("Agree."), "Agree", {})["acc"] == 1.0
    assert compute_score("other", wrap("Disagree"), "Agree", None)["acc"] == 0.0


def test_lenient_rule_is_the_releases():
    def theirs(answer, options, truth):
        return release_correct(f"<answer>{answer}</answer>", options, truth)

    # Case-sensitive substring tests: "I agree" does not contain "Agree"; "I disagree" does not contain "Disagree".
    assert theirs("I agree", AGREE4, "Agree") is False and resolve_answer("I agree", AGREE4) == 1
    assert theirs("I disagree", AGREE4, "Disagree") is False and resolve_answer("I disagree", AGREE4) == 2
    assert theirs("Very important!", IMPORTANT, "Very important") is True
    # "Rather important" (capital R) is not inside "... or rather important": their rule calls this right.
    assert theirs("Very important or rather important", IMPORTANT, "Very important") is True
    assert resolve_answer("Very important or rather important", IMPORTANT) is None


ADVERSARIAL = st.one_of(
    st.none(),
    st.text(max_size=3000),
    st.lists(st.sampled_from(["<answer>", "</answer>", "<reasoning>", "</reasoning>", "Agree", "Disagree", " ",
                              "Strongly", "\n", "**", "B", "<answer><answer>", "é", "\x00", "Ａｇｒｅｅ"]),
             max_size=200).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ADVERSARIAL, variant=st.sampled_from(sorted(VARIANTS)))
def test_any_output_gives_bounded_score(text, variant):
    extra = {"options": AGREE4, "frequency": 0.4}
    out = compute_score("wvs", text, "Agree", extra, variant=variant)
    assert set(out) == set(SCORE_KEYS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert 0.0 <= out["score"] <= 2.8 + 1e-9
    assert out["acc"] in (0.0, 1.0) and 0.0 <= out["format"] <= 1.0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_huge_and_pathological_outputs_are_fast(variant):
    extra = {"options": AGREE4, "frequency": 0.4}
    cases = [
        "x" * 1_000_000,
        "<answer>" * 100_000,
        "<answer>" + "Agree " * 100_000 + "</answer>",
        ("<answer>Agree</answer>" * 50_000),
        "<answer>" + "(" * 10_000 + "Agree" + ")" * 10_000 + "</answer>",
        "\udcff<answer>\u202eAgree</answer>",
    ]
    for text in cases:
        # A guard against super-linear scanning (regex backtracking), not a speed measurement: a quadratic scan of
        # these megabyte inputs takes hours, the linear one milliseconds, so a loaded CI box never sits near 5 s.
        t0 = time.perf_counter()
        out = compute_score("wvs", text, "Agree", extra, variant=variant)
        assert time.perf_counter() - t0 < 5.0
        assert math.isfinite(out["score"])


def test_misspelt_setting_is_reported_once():
    with pytest.warns(UserWarning, match="'varient'"):
        compute_score("wvs", wrap("Agree"), "Agree", {"options": AGREE4}, varient="distance")
    # verl's own extra arguments are expected and silent.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_score("wvs", wrap("Agree"), "Agree", {"options": AGREE4}, reward_router_address=None)
