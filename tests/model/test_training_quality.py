"""Done-when: the model recovers the planted signal, and learns nothing from shuffled labels.

The examples come from the project's generator (`ingestion.synthetic.generate`) with the scoring
service's features computed in memory (`tests.support.training_data`), so the true win
probability of every deal is known; the oracle metrics are that probability scored on the same
test examples. One example per deal (at engagement) keeps the test fast.

Size: the generator's signal sits in 30 agent skills, 85 account effects and 70 product x sector
cells, all learnt through point-in-time win rates, so the model needs enough history per entity to
get within the bar. Measured with `search_size=4` (AUC / Brier as a ratio to the oracle):
60,000 opportunities give 0.973-0.983 / 1.030-1.039 over seeds 5, 11, 42 (the Brier bar missed
or met only to the third decimal: estimation noise, not leakage or a bug); 150,000 give
0.987-0.989 / 1.016-1.021 (seed 11: 0.989 / 1.021), clearing the bar for every seed tried.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.entities import OPPORTUNITY_ID
from infra.settings import Settings
from tests.support.training_data import generator_examples
from training.config import TrainingConfig
from training.features import LABEL, TRUE_PROBABILITY
from training.run import train


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return generator_examples(150_000, seed=11, step_days=None)


def test_xgboost_is_close_to_the_oracle(examples: pd.DataFrame, tmp_path) -> None:
    report = train(
        Settings(home=tmp_path), TrainingConfig(track=False, search_size=4), examples=examples
    )
    xgb, baseline = report.metrics["xgboost"], report.metrics["baseline"]
    assert xgb["auc"] >= 0.97 * xgb["oracle_auc"], report.metrics
    assert xgb["brier"] <= 1.03 * xgb["oracle_brier"], report.metrics
    assert xgb["brier"] < xgb["base_rate_brier"] and baseline["brier"] < xgb["base_rate_brier"]
    # The trees combine what a linear model can only add up (skill, account, product x sector
    # rates, size, quarter end); measured: AUC 0.775 vs 0.766 at seed 11.
    assert xgb["auc"] > baseline["auc"], report.metrics


def test_shuffled_labels_give_a_coin_flip(examples: pd.DataFrame, tmp_path) -> None:
    """Labels permuted across opportunities (one label per deal): nothing left to learn."""
    rng = np.random.default_rng(0)
    per_deal = examples.groupby(OPPORTUNITY_ID)[LABEL].first()
    shuffled = pd.Series(rng.permutation(per_deal.to_numpy()), index=per_deal.index)
    noisy = examples.drop(columns=[TRUE_PROBABILITY]).assign(
        label=examples[OPPORTUNITY_ID].map(shuffled).to_numpy()
    )
    report = train(
        Settings(home=tmp_path), TrainingConfig(track=False, search_size=2), examples=noisy
    )
    assert report.split["test_examples"] > 10_000
    assert abs(report.metrics["xgboost"]["auc"] - 0.5) <= 0.05, report.metrics["xgboost"]
    assert abs(report.metrics["baseline"]["auc"] - 0.5) <= 0.05, report.metrics["baseline"]
