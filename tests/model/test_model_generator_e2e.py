"""The whole path on the synthetic generator: land -> validate -> features -> Feast -> train.

No servers: lake, Feast registry/online store and MLflow live in a temporary CRM_HOME. Features
come only from `get_historical_features` on the feature service `opportunity_scoring_v1`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.lake import Lake
from infra.settings import Settings
from tests.conftest import local_profile_env
from training.examples import FEATURE_SERVICE, Examples, build_examples
from training.features import LABEL, TRUE_PROBABILITY, feature_columns
from training.leakage import refused_columns
from training.run import TrainingReport, train

pytestmark = pytest.mark.e2e

SNAPSHOT = "2017-12-31"
OPPORTUNITIES = 8800


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with local_profile_env(tmp_path_factory.mktemp("crm") / ".crm") as settings:
        yield settings


@pytest.fixture(scope="module")
def examples(local: Settings) -> Examples:
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store
    from ingestion.landing import land
    from ingestion.synthetic import generate
    from validation.run import validate_snapshot

    lake = Lake.from_settings(local)
    land(lake, generate(OPPORTUNITIES, seed=42), SNAPSHOT, code_version="test")
    assert validate_snapshot(lake, SNAPSHOT).passed
    build_feature_tables(lake, SNAPSHOT)
    store = feature_store(local)
    apply(store, local)
    return build_examples(local, SNAPSHOT, store=store)


@pytest.fixture(scope="module")
def report(local: Settings, examples: Examples) -> TrainingReport:
    return train(local, examples.frame, lineage=examples.lineage)


def test_examples_come_from_the_feature_service(examples: Examples) -> None:
    frame = examples.frame
    features = feature_columns(frame)
    assert len(features) >= 20 and not refused_columns(features)
    assert all("__" in f for f in features)  # Feast full feature names: view__feature
    assert frame[features].notna().mean().min() > 0.95
    assert set(frame[LABEL].unique()) == {0, 1} and frame[TRUE_PROBABILITY].notna().all()
    assert examples.lineage["feature_service"] == FEATURE_SERVICE
    assert examples.lineage["snapshot"] == SNAPSHOT and examples.lineage["source_checksums"]


def test_trained_registered_and_champion(report: TrainingReport) -> None:
    assert report.decision is not None and report.decision.promoted
    assert report.run_id and report.model_version == "1"
    xgb = report.metrics["xgboost"]
    assert xgb["brier"] < xgb["base_rate_brier"] and xgb["auc"] > 0.65


@pytest.mark.xfail(
    strict=True,
    reason="At 8,800 opportunities (~3,400 training deals) the bar is still missed after adding "
    "product_sector_daily_stats and engage_month/engage_quarter_end to opportunity_scoring_v1: "
    "seed 42 AUC 0.960 x oracle / Brier 1.054 x (was 0.945 / 1.076); seeds 7 and 5 0.938 / "
    "1.087 and 0.952 / 1.067. The rest is estimation noise of the agent/account/cell rates at "
    "this size. See docs/training.md, 'Distance to the oracle'.",
)
def test_close_to_the_oracle_on_the_generator(report: TrainingReport) -> None:
    xgb = report.metrics["xgboost"]
    assert xgb["auc"] >= 0.97 * xgb["oracle_auc"]
    assert xgb["brier"] <= 1.03 * xgb["oracle_brier"]


def test_train_flow_registers_a_challenger(
    report: TrainingReport, local: Settings, prefect_harness: None
) -> None:
    """The flow builds its own examples from the lake + Feast and goes through the gate."""
    from flows.train import train as train_flow

    summary = train_flow(snapshot=SNAPSHOT, search_size=2)
    assert summary["model_version"] == "2"
    assert summary["lineage"]["snapshot"] == SNAPSHOT
    assert summary["lineage"]["validated_txid"]
    assert summary["decision"]["champion_version"] == "1"
    assert summary["decision"]["reason"]
