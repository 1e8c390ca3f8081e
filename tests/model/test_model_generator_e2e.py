"""The whole path on the synthetic generator: land -> validate -> features -> Feast -> train.

No servers: lake, Feast registry/online store and MLflow live in a temporary CRM_HOME. Features
come only from `get_historical_features` on the feature service `opportunity_scoring_v1`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from feature_repo.feature_services import SCORING_SERVICE
from infra.lake import Lake
from infra.settings import Settings
from tests.support.profiles import local_profile_env
from tests.support.training_data import generator_examples
from training.config import TrainingConfig
from training.examples import (
    Examples,
    build_examples,
    read_examples,
    sample_opportunities,
    write_examples,
)
from training.features import LABEL, TRUE_PROBABILITY, feature_columns
from training.leakage import refused_columns
from training.run import TrainingReport, train

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
    assert validate_snapshot(lake, SNAPSHOT, threshold=local.quality_threshold).passed
    build_feature_tables(lake, SNAPSHOT)
    store = feature_store(local)
    apply(store, local)
    return build_examples(local, SNAPSHOT, store=store)


@pytest.fixture(scope="module")
def report(local: Settings, examples: Examples) -> TrainingReport:
    return train(local, TrainingConfig(), examples=examples.frame, lineage=examples.lineage)


def test_examples_come_from_the_feature_service(examples: Examples) -> None:
    frame = examples.frame
    features = feature_columns(frame)
    assert len(features) >= 20 and not refused_columns(features)
    assert all("__" in f for f in features)  # Feast full feature names: view__feature
    assert frame[features].notna().mean().min() > 0.95
    assert set(frame[LABEL].unique()) == {0, 1} and frame[TRUE_PROBABILITY].notna().all()
    assert examples.lineage["feature_service"] == SCORING_SERVICE
    assert examples.lineage["snapshot"] == SNAPSHOT and examples.lineage["source_checksums"]


def test_written_in_chunks_the_examples_are_the_same(
    local: Settings, examples: Examples, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`write_examples` joins the entity rows in chunks; the file holds `build_examples`' rows."""
    path = tmp_path_factory.mktemp("examples") / "examples.parquet"
    written = write_examples(local, path, SNAPSHOT, chunk_rows=4_000)
    assert len(examples.frame) > 2 * 4_000  # at least three chunks
    assert written.lineage == examples.lineage
    pd.testing.assert_frame_equal(pd.read_parquet(path), examples.frame, check_dtype=False)

    # Read back batch by batch, sampled: the rows of sampling the whole frame.
    sampled, available = read_examples(path, max_examples=3_000, seed=7, batch_rows=1_000)
    whole = pd.read_parquet(path)
    expected = sample_opportunities(whole, 3_000, 7)
    assert available == len(whole) and 0 < len(sampled) < len(whole)
    pd.testing.assert_frame_equal(sampled, expected)
    everything, _ = read_examples(path)
    pd.testing.assert_frame_equal(everything, whole)


def test_trained_registered_and_champion(report: TrainingReport) -> None:
    assert report.decision is not None and report.decision.promoted
    assert report.decision.outcome == "first_champion", report.decision.reason
    assert report.run_id and report.model_version == "1"
    assert report.candidate == report.decision.candidate == "xgboost", report.selection
    xgb = report.metrics["xgboost"]
    assert xgb["brier"] < xgb["base_rate_brier"] and xgb["auc"] > 0.65
    # measured (seed 42): Brier skill +12.5% [+9.0%, +16.1%], log-loss skill +9.8% [+7.0%, +12.6%]
    assert xgb["brier_skill_low"] > 0.05 and xgb["log_loss_skill_low"] > 0.04, xgb


def test_distance_to_the_oracle_does_not_grow(report: TrainingReport) -> None:
    """A ratchet at what the code meets, to be raised whenever it improves.

    The done-when bar (AUC >= 0.97 x oracle, Brier <= 1.03 x) is met from ~30,000 opportunities
    (`test_model_oracle.py`, 50,000), not at this default size: ~3,400 training deals leave
    estimation noise in the agent/account/cell rates (docs/training.md, "Distance to the oracle").
    Measured on this data (generator seed 42, training seed 42, search_size 8; deterministic, two
    runs gave the same numbers): AUC 0.7080 vs oracle 0.7377 = 0.9598 x, Brier 0.2047 vs 0.1943 =
    1.0535 x. The bars sit just below that, leaving room only for numeric noise across platforms
    and library versions. Other generator seeds land elsewhere (7: 0.938 / 1.087, 5: 0.952 /
    1.067), so the bar holds for this data set, not for any 8,800 opportunities.
    """
    xgb = report.metrics["xgboost"]
    assert xgb["auc"] >= 0.955 * xgb["oracle_auc"], xgb
    assert xgb["brier"] <= 1.058 * xgb["oracle_brier"], xgb


def test_the_unit_tests_data_is_what_feast_returns(examples: Examples) -> None:
    """`tests.support.training_data` (the unit and model tests' data) joins like Feast does."""
    in_memory = generator_examples(OPPORTUNITIES, seed=42)
    pd.testing.assert_frame_equal(in_memory, examples.frame, check_dtype=False)


def test_train_flow_registers_a_challenger(
    report: TrainingReport, local: Settings, prefect_harness: None
) -> None:
    """The flow builds its own examples from the lake + Feast and goes through the gate."""
    from flows.train import train as train_flow

    state = train_flow(snapshot=SNAPSHOT, search_size=2, return_state=True)
    assert state.is_completed()  # promoted or not, the run completes
    summary = state.result()
    if not summary["decision"]["promoted"]:  # the flow's state says so
        assert state.name == "Not promoted" and state.message == summary["decision"]["reason"]
    assert summary["model_version"] == "2"
    assert summary["lineage"]["snapshot"] == SNAPSHOT
    assert summary["lineage"]["validated_txid"]
    assert summary["decision"]["champion_version"] == "1"
    assert summary["decision"]["reason"]
    # re-scored on the same test window: the paired comparison is in the decision
    assert summary["decision"]["paired"]["champion_brier"] == pytest.approx(
        report.metrics["xgboost"]["brier"]
    )
