"""dvmap_verl/stats.py: the one bootstrap, CDF distance and RPS, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dvmap_verl import stats
from dvmap_verl.reward.distribution import ranked_probability_score
from dvmap_verl.evaluation import distributional as D
from dvmap_verl.evaluation import metrics as M


def test_rps_on_both_scales_by_hand():
    # CDFs (1, 1, 1) vs (0, 0, 1): gaps 1, 1, 0 -> raw 1 + 1 = 2; / (K - 1) = 2 / 2 = 1.
    assert stats.rps([1, 0, 0], [0, 0, 1], scale="raw") == 2.0
    assert stats.rps([1, 0, 0], [0, 0, 1], scale="normalised") == 1.0
    # CDFs (.5, 1, 1) vs (0, 1, 1): gap .5 -> raw .25, normalised .125.
    assert stats.rps([0.5, 0.5, 0], [0, 1, 0], scale="raw") == 0.25
    assert stats.rps([0.5, 0.5, 0], [0, 1, 0], scale="normalised") == 0.125
    # The array path gives the same numbers row-wise; rows padded past their K (here K = 3 in width 5) keep them.
    p = np.array([[1, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]])
    t = np.array([[0, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
    assert stats.rps(p, t, scale="raw").tolist() == [2.0, 0.25]
    assert stats.rps(p, t, np.array([3, 3]), scale="normalised").tolist() == [1.0, 0.125]
    # Every caller goes through it: the reward's raw RPS and the report's normalised one.
    assert ranked_probability_score([1, 0, 0], [0, 0, 1]) == 2.0
    assert D.rps(p, t, np.array([3, 3])).tolist() == [1.0, 0.125]
    with pytest.raises(ValueError, match="scale must be one of"):
        stats.rps([1], [1], scale="per-option")


def test_cdf_distance_by_hand():
    # CDFs (.2, .5, 1) vs (.5, .8, 1): |gaps| .3 + .3 + 0 = .6 raw, .6 / 2 = .3 normalised.
    assert stats.cdf_distance([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.6)
    assert stats.cdf_distance([[0.2, 0.3, 0.5]], [[0.5, 0.3, 0.2]], [3], scale="normalised")[0] == pytest.approx(0.3)
    p, t = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]), np.array([[0, 0, 0, 1.0], [0, 1.0, 0, 0]])
    assert stats.cdf_distance(p, t).tolist() == [3.0, 0.0]  # first to last option of four: 3 steps
    assert M.wasserstein(p, t).tolist() == [3.0, 0.0]
    assert D.wd_norm(p, t, np.array([4, 4])).tolist() == [1.0, 0.0]


def test_bootstrap_by_hand_and_deterministic():
    # Two values 0 and 1: a resample's mean is 0, .5 or 1 with probability 1/4, 1/2, 1/4, so with 4,000 draws the
    # 2.5th percentile is 0 and the 97.5th is 1 (each end holds ~25% of the draws, far more than 2.5%).
    assert stats.bootstrap([0.0, 1.0], 4000, seed=3) == (0.0, 1.0)
    assert stats.bootstrap([2.5] * 7, 100) == (2.5, 2.5)  # a constant has a zero-width interval
    assert stats.bootstrap([1.0, 2.0], 0) is None  # n = 0 draws: no interval
    lo, hi = stats.bootstrap([], 100)
    assert np.isnan(lo) and np.isnan(hi)
    # Deterministic, and the same draws as one numpy call with the seed (the chunked draws are one stream).
    values = np.array([0.1, 0.9, 0.4, 0.4, 0.7, 0.2, 1.0])
    idx = np.random.default_rng(11).integers(0, 7, size=(250, 7))
    expected = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    assert stats.bootstrap(values, 250, seed=11) == (expected[0], expected[1])
    assert stats.bootstrap(values, 250, seed=11) == stats.bootstrap(values, 250, seed=11)
    # Columns move together: (n, 2) gives one interval per column.
    lo, hi = stats.bootstrap(np.column_stack([values, 2 * values]), 250, seed=11)
    assert lo.tolist() == pytest.approx([expected[0], 2 * expected[0]]) and hi[1] == pytest.approx(2 * expected[1])


def test_paired_bootstrap_by_hand():
    # b - a = 1 on every pair: mean 1 and every resample's mean 1.
    assert stats.paired_bootstrap([1, 2, 3], [2, 3, 4], 200) == (1.0, 1.0, 1.0)
    mean, lo, hi = stats.paired_bootstrap([0, 0], [0, 1], 0)
    assert mean == 0.5 and np.isnan(lo) and np.isnan(hi)  # no draws: the mean, no interval
    assert all(np.isnan(stats.paired_bootstrap([], [], 100)))
    # A statistic may leave draws out: a correlation of a constant draw is not a number.
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    corr = stats.bootstrap(x, 400, seed=0, statistic=lambda s: np.corrcoef(s[:, 0], s[:, 1])[0, 1]
                           if s[:, 0].std() > 0 else np.nan)
    assert corr == pytest.approx((1.0, 1.0))  # the draws with both rows (half of them) correlate perfectly; the rest are left out


def test_jensen_shannon_by_hand():
    assert stats.jensen_shannon([[1.0, 0.0]], [[0.0, 1.0]]).tolist() == [1.0]  # disjoint: 1 bit
    assert stats.jensen_shannon([[0.5, 0.5]], [[0.5, 0.5]]).tolist() == [0.0]
