"""Training/serving skew (issue 15, 3) on a real local Feast store and a real scorer: the served
log recomputed offline with `get_historical_features` matches feature for feature; an online row
that no longer matches the offline data (written online only, as a missed refresh leaves it) is
found for that feature only."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
from feast import FeatureStore

from feature_repo.feature_services import full_name
from infra.lake import Lake
from infra.settings import Settings
from serving.prediction_log import PredictionLog, feature_columns, read_prediction_log
from serving.scorer import LoadedModel, ScoringEngine
from serving.skew import SkewError, skew_report
from serving.state import ScoreJob, ServingState
from tests.pipeline import test_serving_scorer as real
from training.models import WinProbabilityModel

# The same real store and model as the scorer's own tests (module-scoped fixtures, reused).
tables, store, ids, model, engine = real.tables, real.store, real.ids, real.model, real.engine

VIEW, FEATURE = "account_profile", "revenue"


def _served_log(
    settings: Settings, engine: ScoringEngine, chosen: list[str], bucket: str
) -> pd.DataFrame:
    """Score `chosen` through the service's state with the prediction log on; the log read back."""
    lake = Lake.from_settings(settings, bucket=bucket)
    state = ServingState(settings, prediction_log=PredictionLog(lake))
    state.engine = engine

    async def serve() -> None:
        jobs = [
            ScoreJob(chosen[n : n + 10], None, 0, f"r{n}", "/score_batch")
            for n in range(0, len(chosen), 10)
        ]
        await asyncio.gather(*(state.batcher.submit(job) for job in jobs))

    asyncio.run(serve())
    state.stop()
    return read_prediction_log(lake)


def test_the_served_features_equal_the_offline_ones(
    local: Settings, engine: ScoringEngine, store: FeatureStore, ids: dict[str, list[str]]
) -> None:
    log = _served_log(local, engine, ids["open"][:60], "skew-happy")
    report = skew_report(local, log, sample=40, seed=1, store=store)
    assert report.sampled == 40
    assert set(report.features) == set(feature_columns(log)) == set(engine.spec.columns)
    assert report.missing_offline == []
    assert report.skewed == [], report.to_dict()
    assert all(f.compared == 40 and f.rate == 0 for f in report.features.values())


def test_an_online_row_that_was_not_refreshed_is_found_for_its_feature_only(
    local: Settings,
    store: FeatureStore,
    model: WinProbabilityModel,
    tables: dict[str, pd.DataFrame],
    ids: dict[str, list[str]],
) -> None:
    assert full_name(VIEW, FEATURE) in model.spec.numeric  # the feature the model reads
    # The online store now holds revenue x1.5 for every account; the offline data does not.
    rows = tables[VIEW].sort_values("event_timestamp").groupby("account").tail(1).copy()
    rows[FEATURE] = rows[FEATURE] * 1.5
    store.write_to_online_store(VIEW, rows)
    fresh = ScoringEngine(LoadedModel(model, "crm-test-model", "7"), store, "local")  # no cache
    log = _served_log(local, fresh, ids["open"][:60], "skew-injected")

    report = skew_report(local, log, sample=60, seed=2, store=store)
    name = full_name(VIEW, FEATURE)
    with_account = int(log["account"].notna().sum())
    assert report.skewed == [name], report.to_dict()
    assert report.features[name].mismatches == with_account > 0  # deals with an account only
    example = report.features[name].examples[0]
    assert example["served"] == pytest.approx(example["offline"] * 1.5)
    assert report.to_dict()["features"][name]["rate"] == with_account / 60


def test_a_log_without_the_deal_keys_says_how_to_read_it(local: Settings) -> None:
    with pytest.raises(SkewError, match="read_prediction_log"):
        skew_report(local, pd.DataFrame({"opportunity_id": ["X"]}), sample=1, seed=0)
    assert skew_report(local, pd.DataFrame(), sample=5, seed=0).sampled == 0
