"""Skill scores and bootstrap intervals over opportunities: hand-checkable cases, seeded, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training.skill import (
    Interval,
    brier_losses,
    group_sums,
    log_losses,
    paired_gains,
    resampled_sums,
    skill_intervals,
    skill_score,
)


def _deals(n_deals: int, per_deal: int, signal: float, seed: int = 0):
    """`n_deals` opportunities with `per_deal` examples each, sharing the deal's outcome."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0.0, 1.0, n_deals) * signal
    truth = 1.0 / (1.0 + np.exp(-(0.5 + logit)))
    won = (rng.random(n_deals) < truth).astype(int)
    groups = np.repeat(np.arange(n_deals), per_deal)
    return groups, np.repeat(won, per_deal), np.repeat(truth, per_deal)


def test_skill_scores_by_hand() -> None:
    y = np.array([1, 0, 1, 1])
    assert brier_losses(y, np.array([1.0, 0.0, 0.5, 0.75])).tolist() == [0, 0, 0.25, 0.0625]
    assert log_losses(np.array([1]), np.array([0.5]))[0] == pytest.approx(np.log(2))
    assert np.isfinite(log_losses(np.array([1]), np.array([0.0]))).all()  # clipped, not inf
    assert skill_score(np.array([0.1, 0.1]), np.array([0.2, 0.2])) == pytest.approx(0.5)
    assert skill_score(np.array([0.3]), np.array([0.2])) == pytest.approx(-0.5)
    base = np.full(4, 0.75)
    assert skill_score(brier_losses(y, base), brier_losses(y, base)) == 0.0


def test_group_sums_count_and_add_per_opportunity() -> None:
    sums = group_sums(np.array(["b", "a", "b", "c"]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert sums.tolist() == [[1, 2], [2, 4], [1, 4]]  # a, b, c


def test_resampling_draws_whole_groups_with_replacement() -> None:
    per_group = np.array([[1.0, 10.0], [1.0, 20.0], [1.0, 30.0]])
    draws = resampled_sums(per_group, 500, seed=1)
    assert draws.shape == (500, 2) and (draws[:, 0] == 3).all()  # 3 groups drawn each time
    assert set(np.unique(draws[:, 1])) <= {30, 40, 50, 60, 70, 80, 90}
    assert np.array_equal(draws, resampled_sums(per_group, 500, seed=1))  # seeded
    assert not np.array_equal(draws, resampled_sums(per_group, 500, seed=2))


def test_the_truth_has_skill_and_a_constant_has_none() -> None:
    groups, y, truth = _deals(3000, 1, signal=1.0)
    rate = float(y.mean())
    real = skill_intervals(groups, y, truth, rate, 1000, 0.95, 7)
    assert real["brier_skill"].above_zero and real["log_loss_skill"].above_zero
    assert real["brier_skill"].low < real["brier_skill"].estimate < real["brier_skill"].high
    flat = skill_intervals(groups, y, np.full(len(y), rate), rate, 1000, 0.95, 7)
    assert flat["brier_skill"] == Interval(0.0, 0.0, 0.0)


def test_noise_has_no_skill_and_its_interval_says_so() -> None:
    groups, y, _ = _deals(3000, 1, signal=0.0)
    noise = np.clip(y.mean() + np.random.default_rng(3).normal(0, 0.05, len(y)), 0.01, 0.99)
    intervals = skill_intervals(groups, y, noise, float(y.mean()), 1000, 0.95, 7)
    for interval in intervals.values():
        assert interval.estimate < 0 and not interval.above_zero


def test_intervals_resample_opportunities_not_examples() -> None:
    """Copies of a deal's example add no information: the interval must not narrow with them
    (resampling examples would shrink it by about sqrt(copies))."""
    one = _deals(1500, 1, signal=1.0)
    five = _deals(1500, 5, signal=1.0)
    wide = skill_intervals(*one[:2], one[2], 0.6, 1000, 0.95, 3)["brier_skill"]
    same = skill_intervals(*five[:2], five[2], 0.6, 1000, 0.95, 3)["brier_skill"]
    assert same.estimate == pytest.approx(wide.estimate)
    assert (same.high - same.low) == pytest.approx(wide.high - wide.low, rel=0.15)
    by_example = skill_intervals(np.arange(len(five[0])), five[1], five[2], 0.6, 1000, 0.95, 3)
    narrow = by_example["brier_skill"]
    assert narrow.high - narrow.low < 0.6 * (same.high - same.low)


def test_paired_gains_cancel_what_both_models_share() -> None:
    groups, y, truth = _deals(2000, 3, signal=1.0)
    worse = np.clip(truth + 0.3 * (0.5 - truth), 0.01, 0.99)  # shrunk towards 0.5: worse
    gains = paired_gains(groups, y, worse, truth, 1000, 0.95, 5)
    assert gains["brier_gain"].above_zero and gains["log_loss_gain"].above_zero
    assert gains["brier_gain"].estimate == pytest.approx(
        brier_losses(y, worse).mean() - brier_losses(y, truth).mean()
    )
    reverse = paired_gains(groups, y, truth, worse, 1000, 0.95, 5)
    assert reverse["brier_gain"].high < 0
    same = paired_gains(groups, y, truth, truth, 1000, 0.95, 5)
    assert same["brier_gain"] == Interval(0.0, 0.0, 0.0) and not same["brier_gain"].above_zero


def test_a_thousand_resamples_of_many_opportunities_are_fast() -> None:
    groups, y, truth = _deals(20_000, 2, signal=1.0)
    started = time.perf_counter()
    skill_intervals(groups, y, truth, 0.6, 1000, 0.95, 1)
    assert time.perf_counter() - started < 10
