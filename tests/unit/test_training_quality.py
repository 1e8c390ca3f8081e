"""Done-when: the model recovers the planted signal, and learns nothing from shuffled labels.

The simulated frame (training.simulated) has a known true win probability per deal; the oracle
metrics are that probability scored on the same test examples. 60,000 opportunities give each of
the 35 agents and 30 series x sector cells enough history for the model to get close to it
(at 30,000 the Brier ratio is ~1.03-1.04: estimation noise, not leakage or a bug). One example
per deal (at engagement) keeps the test fast; the as-of examples carry no extra signal here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infra.settings import Settings
from training.features import LABEL, OPPORTUNITY_ID
from training.run import train
from training.simulated import simulate_examples

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return simulate_examples(60_000, seed=11, step_days=None)


def test_xgboost_is_close_to_the_oracle(examples: pd.DataFrame, tmp_path) -> None:
    report = train(Settings(home=tmp_path), examples, track=False, search_size=4)
    xgb, baseline = report.metrics["xgboost"], report.metrics["baseline"]
    assert xgb["auc"] >= 0.97 * xgb["oracle_auc"], report.metrics
    assert xgb["brier"] <= 1.03 * xgb["oracle_brier"], report.metrics
    assert xgb["brier"] < xgb["base_rate_brier"] and baseline["brier"] < xgb["base_rate_brier"]
    assert xgb["auc"] > baseline["auc"]  # the planted series x sector fit is an interaction


def test_shuffled_labels_give_a_coin_flip(examples: pd.DataFrame, tmp_path) -> None:
    """Labels permuted across opportunities (one label per deal): nothing left to learn."""
    rng = np.random.default_rng(0)
    per_deal = examples.groupby(OPPORTUNITY_ID)[LABEL].first()
    shuffled = pd.Series(rng.permutation(per_deal.to_numpy()), index=per_deal.index)
    noisy = examples.drop(columns=["win_probability"]).assign(
        label=examples[OPPORTUNITY_ID].map(shuffled).to_numpy()
    )
    report = train(Settings(home=tmp_path), noisy, track=False, search_size=2)
    assert report.split["test_examples"] > 10_000
    assert abs(report.metrics["xgboost"]["auc"] - 0.5) <= 0.05, report.metrics["xgboost"]
    assert abs(report.metrics["baseline"]["auc"] - 0.5) <= 0.05, report.metrics["baseline"]
