"""Metric definitions against hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import evaluate, expected_calibration_error, reliability_curve


def test_base_rate_brier_and_oracle_ratios() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.random(20_000) < truth).astype(int)
    metrics = evaluate(y, truth, base_rate=0.5, true_probability=truth)
    assert metrics["auc_ratio_to_oracle"] == pytest.approx(1.0)
    assert metrics["brier_ratio_to_oracle"] == pytest.approx(1.0)
    assert metrics["base_rate_brier"] == pytest.approx(0.25)
    # the true probability is calibrated: ECE small, Brier well under the base rate's
    assert metrics["ece"] < 0.02
    assert metrics["brier"] < metrics["base_rate_brier"] - 0.05


def test_reliability_and_ece_of_a_miscalibrated_score() -> None:
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    p = np.full(10, 0.2)  # predicts 20 %, observed 80 %
    curve = reliability_curve(y, p)
    assert curve.predicted == [pytest.approx(0.2)] and curve.observed == [pytest.approx(0.8)]
    assert curve.counts == [10]
    assert expected_calibration_error(y, p) == pytest.approx(0.6)
