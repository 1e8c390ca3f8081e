"""The training issue's bar: XGBoost within 3% of the generator's oracle, on synthetic data.

The whole path (generator -> land -> validate -> feature tables -> Feast
`get_historical_features` on `opportunity_scoring_v1` -> train), no servers. At the default
8,800 opportunities the bar is missed by estimation noise (`test_model_generator_e2e.py` holds
the code to what it meets there); with 50,000 opportunities the same code clears it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.lake import Lake
from tests.support.profiles import local_profile_env
from training.config import TrainingConfig
from training.run import TrainingReport, train

SNAPSHOT = "2017-12-31"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingReport]:
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store
    from ingestion.landing import land
    from ingestion.synthetic import generate
    from training.examples import build_examples
    from validation.run import validate_snapshot

    with local_profile_env(tmp_path_factory.mktemp("oracle") / ".crm") as settings:
        lake = Lake.from_settings(settings)
        land(lake, generate(50_000, seed=42), SNAPSHOT, code_version="test")
        assert validate_snapshot(lake, SNAPSHOT, threshold=settings.quality_threshold).passed
        build_feature_tables(lake, SNAPSHOT)
        store = feature_store(settings)
        apply(store, settings)
        examples = build_examples(settings, SNAPSHOT, store=store)
        yield train(settings, TrainingConfig(track=False), examples=examples.frame)


def test_xgboost_is_within_three_percent_of_the_oracle(report: TrainingReport) -> None:
    xgb = report.metrics["xgboost"]
    assert xgb["auc"] >= 0.97 * xgb["oracle_auc"], xgb
    assert xgb["brier"] <= 1.03 * xgb["oracle_brier"], xgb


def test_the_champion_to_be_has_skill_and_is_close_to_the_oracle(report: TrainingReport) -> None:
    """The candidate registered (the better on validation) passes the gate's skill check and
    is the one within 3% of the oracle's AUC."""
    assert report.skill_check is not None and report.skill_check.passed, report.skill_check
    registered = report.metrics[report.candidate]
    assert registered["auc"] >= 0.97 * registered["oracle_auc"], report.candidate
    assert registered["brier_skill_low"] > 0 and registered["log_loss_skill_low"] > 0


def test_the_baseline_is_honestly_worse_and_both_beat_the_base_rate(report: TrainingReport) -> None:
    xgb, base = report.metrics["xgboost"], report.metrics["baseline"]
    assert xgb["auc"] > base["auc"]
    assert xgb["brier"] < base["base_rate_brier"] and base["brier"] < base["base_rate_brier"]
