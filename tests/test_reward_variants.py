"""Reward variants as a registry: what `variant=` accepts is what the README lists; a variant added from outside
the package is scored like the others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dvmap_verl.reward import VARIANTS, OptionVariant, compute_score, register_variant
from dvmap_verl.reward.variants import FIELDS

README = Path(__file__).resolve().parents[1] / "README.md"
GOOD = "<reasoning>r</reasoning><answer>Agree</answer>"  # all four release tags: format share 1


def test_readme_lists_exactly_the_registered_variants():
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `variant` |"))
    listed = {name for name in re.findall(r"`([^`]+)`", row.split("|")[3]) if re.fullmatch(r"[a-z_]+", name)}
    assert listed == set(VARIANTS)


def test_each_variant_declares_what_it_reads():
    for v in VARIANTS.values():
        assert set(v.requires) <= set(v.needs) <= set(FIELDS)
    assert VARIANTS["reference"].needs == ()  # the release reads the raw completion and the ground truth alone
    assert VARIANTS["rps"].needs == ("options", "target") and VARIANTS["rps"].requires == ("options",)
    assert VARIANTS["frequency"].needs == ("options", "frequency")


def test_a_variant_registered_from_outside_is_scored_like_the_others():
    half = OptionVariant("half_credit", lambda j, beta, **_: 0.5 * j.correct + beta * j.fmt,
                         "half a point for the truth, plus beta * format")
    register_variant(half)
    try:
        right = compute_score("wvs", GOOD, "Agree", {"options": ["Agree", "Disagree"]}, variant="half_credit")
        wrong = compute_score("wvs", GOOD, "Disagree", {"options": ["Agree", "Disagree"]}, variant="half_credit")
        # 0.5 * 1 + 0.4 * 1 (all four tags) = 0.9; a wrong answer keeps the format share: 0.4.
        assert right == {"score": 0.9, "acc": 1.0, "format": 1.0, "parsed": 1.0, "likert": 1.0}
        assert wrong["score"] == pytest.approx(0.4) and wrong["acc"] == 0.0 and wrong["likert"] == 0.0
        with pytest.raises(ValueError, match="already registered"):
            register_variant(half)
    finally:
        VARIANTS.pop("half_credit", None)
    with pytest.raises(ValueError, match="unknown reward variant 'half_credit'"):
        compute_score("wvs", GOOD, "Agree", {"options": ["Agree", "Disagree"]}, variant="half_credit")
