"""The logistic baseline as an XGBoost booster: it scores like the pipeline, and it can be
registered and served like the XGBoost model (same matrix, same contributions API)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from training.additive import linear_step_term
from training.features import FeatureSpec
from training.models import (
    BASELINE,
    WinProbabilityModel,
    baseline_model,
    baseline_predict,
    fit_baseline,
)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, FeatureSpec]:
    rng = np.random.default_rng(4)
    n = 3000

    def frame(size: int, shift: float = 0.0) -> pd.DataFrame:
        rate = rng.uniform(0, 1, size) + shift
        count = rng.integers(0, 40, size).astype(float) + 10 * shift
        sector = rng.choice(["retail", "finance", "medical"], size).astype(object)
        sector[rng.random(size) < 0.05] = None
        rate[rng.random(size) < 0.05] = np.nan
        return pd.DataFrame(
            {"win_rate": rate, "count": count, "flag": rng.random(size) < 0.3, "sector": sector}
        )

    train = frame(n)
    logit = 2 * np.nan_to_num(train["win_rate"], nan=0.5) - 0.03 * train["count"]
    logit += train["sector"].map({"retail": 0.4, "finance": -0.3}).fillna(0).to_numpy()
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit - 0.2)))).astype(int)
    later = frame(800, shift=0.3)  # a later window: values beyond the training range too
    later.loc[:5, "sector"] = "mining"  # a level training never saw
    spec = FeatureSpec.infer(train, ["win_rate", "count", "flag", "sector"])
    return train, y, later, spec


def test_the_booster_scores_like_the_pipeline(frames) -> None:
    train, y, later, spec = frames
    model, step_error = baseline_model(train, y, spec)
    assert model.kind == BASELINE and step_error < 0.01
    pipeline = fit_baseline(train, y, spec)
    known = later["sector"] != "mining"
    for frame in (train, later[known]):
        gap = np.abs(model.predict_proba(frame) - baseline_predict(pipeline, frame, spec))
        assert gap.mean() < 0.002 and gap.max() < 0.02, (gap.mean(), gap.max())
    # An unknown level is encoded as missing (as for XGBoost): it gets the missing level's term.
    unknown = later[~known]
    as_missing = unknown.assign(sector=None)
    expected = baseline_predict(pipeline, as_missing, spec)
    assert np.allclose(model.predict_proba(unknown), expected, atol=0.02)


def test_it_goes_through_save_and_load_and_explains_itself(frames) -> None:
    """What the registry and the scorer do with a booster: load it from its bytes, score the
    encoded matrix, and split a score into per-feature contributions that add up."""
    train, y, later, spec = frames
    model, _ = baseline_model(train, y, spec)
    loaded = xgb.Booster()
    loaded.load_model(bytearray(model.booster.save_raw("ubj")))
    restored = WinProbabilityModel.from_metadata(loaded, model.metadata())
    assert restored.kind == BASELINE
    assert np.allclose(restored.predict_proba(later), model.predict_proba(later))
    matrix = xgb.DMatrix(
        spec.encode(later), feature_types=spec.feature_types, enable_categorical=True
    )
    contributions = loaded.predict(matrix, pred_contribs=True)
    margin = loaded.predict(matrix, output_margin=True)
    assert contributions.shape == (len(later), len(spec.columns) + 1)
    assert np.allclose(contributions.sum(axis=1), margin, atol=1e-4)
    assert set(model.importance()) <= set(spec.columns) and model.importance()["win_rate"] > 0


def test_a_numeric_term_is_exact_on_integers_and_follows_the_line_beyond_the_range() -> None:
    x = np.array([0, 1, 2, 5, 9, np.nan], dtype="float64")
    term = linear_step_term(x, slope=0.5, center=2.0, missing=-1.0)
    probe = np.array([0, 3, 7, 9, 12, 18, -4, np.nan])
    assert term(probe).tolist() == pytest.approx([-1.0, 0.5, 2.5, 3.5, 5.0, 8.0, -3.0, -1.0])
    # 32 unit steps on each side (at least one training range), then constant
    assert term(np.array([41, 1e6])).tolist() == pytest.approx([19.5, 19.5])
    assert term(np.array([-32, -1e6])).tolist() == pytest.approx([-17.0, -17.5])


def test_a_continuous_term_has_bounded_steps() -> None:
    x = np.random.default_rng(1).lognormal(0, 1, 20_000)
    term = linear_step_term(x, slope=1.0, center=0.0, missing=0.0, max_steps=256)
    assert term.thresholds.size <= 256 + 2 * 32
    inside = np.linspace(x.min(), x.max(), 5000)
    assert np.abs(term(inside) - inside).max() < (x.max() - x.min()) / 100
