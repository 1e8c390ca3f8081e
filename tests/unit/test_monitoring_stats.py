"""The drift statistics against values computed by hand: PSI over fixed bins (with the floor for
an empty bin), the KS and chi-square p-values, the reference's bins and shares, the alarm rule,
and the realised-performance metrics of a group of (prediction, outcome) pairs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from infra.settings import Settings
from monitoring.drift import judged
from monitoring.performance import join_outcomes, scores
from monitoring.stats import PSI_FLOOR, chi_square_p_value, ks_p_value, psi
from training.reference import MISSING, OTHER, category_shares, numeric_edges, numeric_shares


def test_psi_is_the_sum_of_share_differences_times_their_log_ratio() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_an_empty_bin_costs_a_finite_amount_through_the_floor() -> None:
    expected = (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi([0.5, 0.5], [0.0, 1.0]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def test_ks_p_value_of_two_separate_samples_is_the_exact_one() -> None:
    # Five values each, every reference value below every current one: D = 1, and the exact
    # two-sided p-value is 2 / C(10, 5) (only the two extreme orderings are as extreme).
    low, high = pd.Series([1.0, 2, 3, 4, 5]), pd.Series([6.0, 7, 8, 9, 10])
    assert ks_p_value(low, high) == pytest.approx(2 / math.comb(10, 5))
    assert ks_p_value(low, low) == pytest.approx(1.0)
    assert ks_p_value(pd.Series([np.nan]), high) is None  # nothing present on one side


def test_chi_square_p_value_against_the_reference_shares() -> None:
    reference = pd.Series(["a"] * 50 + ["b"] * 50)
    current = pd.Series(["a"] * 30 + ["b"] * 70)
    # Expected 50/50, observed 30/70: X² = 20²/50 + 20²/50 = 16 on 1 degree of freedom, whose
    # survival function is erfc(sqrt(X²/2)).
    assert chi_square_p_value(reference, current) == pytest.approx(math.erfc(math.sqrt(8)))
    assert chi_square_p_value(reference, pd.Series(["a", "c"])) == 0.0  # a level never seen
    assert chi_square_p_value(pd.Series(["a"] * 5), pd.Series(["a"] * 3)) == 1.0


def test_the_reference_bins_are_its_quantiles_and_missing_is_a_bin() -> None:
    values = pd.Series(np.arange(1.0, 11.0))
    assert numeric_edges(values, 2) == [5.5]
    assert numeric_shares(values, [5.5]) == [0.5, 0.5, 0.0]
    # 1 and 2 in (-inf, 2.5], 4 in (2.5, inf), one missing.
    assert numeric_shares(pd.Series([1.0, 2.0, np.nan, 4.0]), [2.5]) == [0.5, 0.25, 0.25]
    assert numeric_edges(pd.Series([3.0] * 10), 10) == [3.0]  # repeated quantiles merged


def test_category_shares_keep_unknown_levels_and_missing_apart() -> None:
    shares = category_shares(pd.Series(["a", "a", "b", None, "z"]), ["a", "b"])
    assert shares == {"a": 0.4, "b": 0.2, OTHER: 0.2, MISSING: 0.2}


def test_a_feature_drifts_only_when_the_shift_is_large_and_not_noise() -> None:
    settings = Settings(profile="local", _env_file=None)
    big, small = settings.monitor_psi_threshold, settings.monitor_psi_threshold / 2
    rare, common = settings.monitor_p_value / 10, 0.5
    assert judged(big, rare, settings)
    assert not judged(big, common, settings)  # a large PSI on a few rows: noise
    assert not judged(small, rare, settings)  # a tiny shift that many rows make significant
    assert not judged(big, None, settings)


def test_realised_scores_of_a_group_by_hand() -> None:
    y, p = np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.6, 0.2])
    out = scores(y, p, base_rate=0.5)
    # Brier: (0.04 + 0.16 + 0.16 + 0.04) / 4; the base rate's: 0.25; skill 1 - 0.1 / 0.25.
    assert out["brier"] == pytest.approx(0.1) and out["base_rate_brier"] == pytest.approx(0.25)
    assert out["brier_skill"] == pytest.approx(0.6) and out["auc"] == 1.0
    assert out["observed_rate"] == 0.5 and out["mean_predicted"] == 0.5
    assert scores(np.array([1, 1]), np.array([0.7, 0.9]), None)["auc"] is None  # one class


def test_only_deals_closed_after_their_prediction_are_judged() -> None:
    predictions = pd.DataFrame(
        {
            "opportunity_id": ["A", "B", "C"],
            "source": "batch",
            "model_version": "1",
            "predicted_at": pd.to_datetime(["2017-12-08"] * 3, utc=True),
            "probability": [0.9, 0.2, 0.5],
        }
    )
    closed = pd.DataFrame(
        {
            "opportunity_id": ["A", "B"],
            "label": [1, 0],
            "closed_on": pd.to_datetime(["2017-12-12", "2017-12-01"], utc=True),
        }
    )
    pairs = join_outcomes(predictions, closed)
    assert pairs["opportunity_id"].tolist() == ["A"]  # B closed before; C is still open


def test_daily_statistics_and_calendar_positions_are_reported_not_judged() -> None:
    from monitoring.drift import is_judged

    assert is_judged("account_profile__revenue")
    assert is_judged("product_profile__series")
    assert is_judged("opportunity_request_features__days_open")
    assert not is_judged("product_daily_stats__won_90d")
    assert not is_judged("sales_agent_daily_stats__win_rate_30d")
    assert not is_judged("opportunity_request_features__engage_month")
