"""Feature encoding and calibration: the parts a registered model carries with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import log_loss

from training.errors import ExamplesError
from training.features import FeatureSpec, feature_columns
from training.models import (
    Calibrator,
    calibrate,
    choose_calibration,
    fit_calibrator,
    search_configs,
)


def test_spec_encodes_categoricals_by_training_vocabulary() -> None:
    train = pd.DataFrame({"x": [1, 2, 3], "sector": ["retail", "finance", None]})
    spec = FeatureSpec.infer(train, ["x", "sector"])
    assert spec.numeric == ("x",) and spec.categorical == {"sector": ("finance", "retail")}
    encoded = spec.encode(pd.DataFrame({"sector": ["retail", "mining", None], "x": [5, None, 1]}))
    assert list(encoded.columns) == ["x", "sector"]
    assert encoded["sector"].tolist()[0] == 1.0 and np.isnan(encoded["sector"]).tolist()[1:] == [
        True,
        True,
    ]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_spec_keeps_column_order_through_yaml() -> None:
    """MLflow writes model metadata to YAML, which sorts mapping keys."""
    train = pd.DataFrame({"z_cat": ["a", "b"], "a_cat": ["c", "d"], "n": [1.0, 2.0]})
    spec = FeatureSpec.infer(train, ["z_cat", "a_cat", "n"])
    restored = FeatureSpec.from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert restored.columns == spec.columns == ["n", "z_cat", "a_cat"]
    with pytest.raises(ExamplesError, match="lacks"):
        spec.encode(pd.DataFrame({"x": [1]}))


def test_keys_labels_timestamps_and_truth_are_not_features() -> None:
    frame = pd.DataFrame(
        columns=[
            "opportunity_id",
            "sales_agent",
            "event_timestamp",
            "label",
            "label_timestamp",
            "engage_date",
            "request_timestamp",
            "win_probability",
            "agent__win_rate_90d",
            "agent__closed_90d",
            "agent__closed_all",
            "account__won_365d",
            "close_value",
        ]
    )
    assert feature_columns(frame) == ["agent__win_rate_90d", "agent__closed_90d", "close_value"]


def test_calibration_is_chosen_only_when_it_helps() -> None:
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.1, 0.9, 4000)
    y = (rng.random(4000) < truth).astype(int)
    calibrated, losses = choose_calibration(truth, y)
    assert calibrated.method == "none", losses
    squashed = 0.5 + 0.2 * (truth - 0.5)  # under-confident scores: Platt should fix them
    fixed, losses = choose_calibration(squashed, y)
    assert fixed.method in {"platt", "isotonic"} and losses[fixed.method] < losses["none"]
    restored = Calibrator.from_dict(fixed.to_dict())
    assert np.allclose(restored.apply(squashed), fixed.apply(squashed))
    platt = fit_calibrator("platt", squashed, y)
    assert np.corrcoef(platt.apply(squashed), truth)[0, 1] > 0.99


def test_search_configs_are_distinct_and_seeded() -> None:
    configs = search_configs(8, seed=42)
    assert len(configs) == 8 and len({tuple(sorted(c.items())) for c in configs}) == 8
    assert configs == search_configs(8, seed=42)


def test_calibration_never_makes_held_out_log_loss_worse_on_noise() -> None:
    """Scores that carry nothing: no calibrator may win on held-out rows by luck alone."""
    rng = np.random.default_rng(11)
    for trial in range(5):
        p = rng.uniform(0.2, 0.9, 600)
        y = (rng.random(600) < 0.63).astype(int)
        chosen = calibrate(p, y, seed=trial)
        method = chosen.calibrator.method
        assert chosen.losses[method] <= chosen.losses["none"], (trial, chosen.losses)
        held_out = log_loss(y, chosen.out_of_fold)
        assert held_out == pytest.approx(chosen.losses[method])


def test_cross_fitting_splits_opportunities_not_examples() -> None:
    """Five examples per deal share its outcome: split by example, isotonic would see the
    label of every deal it is judged on and look far better than it is."""
    rng = np.random.default_rng(2)
    deals = 400
    p = np.repeat(rng.uniform(0.3, 0.8, deals), 5) + rng.normal(0, 0.0005, deals * 5)
    y = np.repeat((rng.random(deals) < 0.6).astype(int), 5)  # independent of p
    groups = np.repeat(np.arange(deals), 5)
    by_deal = calibrate(p, y, seed=1, groups=groups)
    assert by_deal.calibrator.method == "platt", by_deal.losses  # the mean is off, not the rank
    by_example = calibrate(p, y, seed=1)
    assert by_example.calibrator.method == "isotonic"
    assert by_example.losses["isotonic"] < by_deal.losses["isotonic"] - 0.02


def test_isotonic_steps_never_say_impossible() -> None:
    p = np.linspace(0.01, 0.99, 200)
    y = (p > 0.5).astype(int)  # perfectly separable: plain isotonic maps the ends to 0 and 1
    calibrator = fit_calibrator("isotonic", p, y)
    out = calibrator.apply(np.array([0.0, 0.01, 0.99, 1.0]))
    assert 0.0 < out.min() < 0.05 and 0.95 < out.max() < 1.0
    assert np.all(np.diff(calibrator.apply(np.linspace(0, 1, 101))) >= 0)  # still monotone
