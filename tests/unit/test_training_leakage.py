"""The leakage guard refuses outcome-bearing features, by contract and by evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infra.settings import Settings
from tests.support.training_data import generator_examples
from training.config import TrainingConfig
from training.errors import LeakageError
from training.features import LABEL
from training.leakage import check_refused, check_univariate, refused_columns
from training.run import train


def test_refused_names_match_after_feast_prefix() -> None:
    columns = [
        "close_value",
        "opportunity__close_date",
        "account_daily_stats__close_value_sum",
        "opportunity:deal_stage",
        "sales_agent_daily_stats__closed_30d",
        "sales_agent_daily_stats__won_all",
        "product_profile__sales_price",
    ]
    assert refused_columns(columns) == [
        "close_value",
        "opportunity__close_date",
        "account_daily_stats__close_value_sum",
        "opportunity:deal_stage",
    ]


def test_refused_message_names_the_feature_and_the_fix() -> None:
    with pytest.raises(LeakageError, match=r"refused feature\(s\) close_value: known only after"):
        check_refused(["sales_agent_daily_stats__win_rate_90d", "close_value"])


def test_univariate_guard_names_a_near_perfect_feature() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    frame = pd.DataFrame(
        {
            "honest": rng.normal(size=2000) + 0.3 * y,
            "leaky": y + rng.normal(scale=0.05, size=2000),
            "leaky_category": np.where(y == 1, "yes", "no"),
        }
    )
    with pytest.raises(LeakageError, match=r"leaky \(AUC 1\.000\), leaky_category"):
        check_univariate(frame, y, list(frame.columns))
    aucs = check_univariate(frame, y, ["honest"])
    assert 0.55 < aucs["honest"] < 0.9


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return generator_examples(3000, seed=1)


def test_honest_features_pass_the_guard(examples: pd.DataFrame, tmp_path) -> None:
    """The control for the two tests below: the same examples without a leak train fine."""
    report = train(
        Settings(home=tmp_path), TrainingConfig(track=False, search_size=1), examples=examples
    )
    assert report.univariate_auc_max < 0.9


def test_close_value_as_a_feature_stops_the_run(examples: pd.DataFrame, tmp_path) -> None:
    leaky = examples.assign(close_value=np.where(examples[LABEL] == 1, 5000, 0))
    with pytest.raises(LeakageError, match="close_value"):
        train(Settings(home=tmp_path), TrainingConfig(search_size=1), examples=leaky)
    assert not (tmp_path / "mlflow.db").exists()  # stopped before anything was tracked


def test_renamed_outcome_is_caught_by_evidence(examples: pd.DataFrame, tmp_path) -> None:
    leaky = examples.assign(opportunity__amount_booked=np.where(examples[LABEL] == 1, 5000, 0))
    with pytest.raises(LeakageError, match=r"opportunity__amount_booked \(AUC 1\.000\)"):
        train(Settings(home=tmp_path), TrainingConfig(track=False), examples=leaky)
