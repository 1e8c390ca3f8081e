"""ScoringEngine on a real local Feast store (SQLite online, DuckDB offline) in a temp folder.

The model is a small real XGBoost booster trained here on the store's own online features, with
its spec's categorical keys sorted as MLflow metadata returns them. Scores must equal Feast's
`get_online_features` + `FeatureSpec.encode` + the booster, to 1e-6.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from feast import FeatureStore

from feature_tables.compute import compute_feature_tables
from feature_tables.store import materialize
from infra.settings import Settings
from serving.errors import InvalidFeatures, OpportunityClosed, OpportunityNotFound
from serving.online import entity_key
from serving.scorer import REQUEST_FEATURES, LoadedModel, ScoringEngine
from tests.support.feast_reference import online_service_frame
from tests.support.feature_reference import random_tables
from tests.support.profiles import open_store
from training.features import FeatureSpec, feature_columns
from training.models import Calibrator, WinProbabilityModel

AS_OF = date(2017, 12, 31)
SECTOR_VIEW = "product_sector_daily_stats"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return compute_feature_tables(random_tables(600, 7), as_of_end=AS_OF)


@pytest.fixture(scope="module")
def store(local: Settings, tables: dict[str, pd.DataFrame]) -> FeatureStore:
    fs = open_store(local, tables)
    materialize(fs)
    return fs


def _last_stage(tables: dict[str, pd.DataFrame]) -> pd.Series:
    opp = tables["opportunity"].sort_values("event_timestamp")
    return opp.groupby("opportunity_id")["deal_stage"].last()


@pytest.fixture(scope="module")
def ids(tables: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    stage = _last_stage(tables)
    closed = stage[stage.isin(["Won", "Lost"])].index.tolist()
    return {"open": sorted(stage.index.difference(closed)), "closed": closed}


@pytest.fixture(scope="module")
def model(store: FeatureStore, ids: dict[str, list[str]]) -> WinProbabilityModel:
    train_ids = ids["open"][:150] + ids["closed"][:150]
    frame = online_service_frame(
        store, train_ids, [datetime(2018, 1, 1, tzinfo=UTC)] * len(train_ids)
    )
    spec = FeatureSpec.infer(frame, feature_columns(frame))
    spec = FeatureSpec.from_dict(
        {"numeric": list(spec.numeric), "categorical": dict(sorted(spec.categorical.items()))}
    )
    encoded = spec.encode(frame)
    rate = encoded.filter(like="win_rate_all").fillna(0.5).mean(axis=1).to_numpy()
    label = rate + np.random.default_rng(3).normal(0, 0.1, len(rate)) > np.median(rate)
    matrix = xgb.DMatrix(
        encoded, label=label.astype(int), enable_categorical=True, feature_types=spec.feature_types
    )
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic", "nthread": 1}, matrix, 20)
    return WinProbabilityModel(booster, spec, Calibrator("platt", {"a": 1.1, "b": -0.05}))


@pytest.fixture(scope="module")
def engine(store: FeatureStore, model: WinProbabilityModel) -> ScoringEngine:
    return ScoringEngine(LoadedModel(model, "crm-test-model", "7"), store, "local")


def _offline(model: WinProbabilityModel, frame: pd.DataFrame) -> np.ndarray:
    encoded = model.spec.encode(frame)[model.booster.feature_names]
    types = ["c" if c in model.spec.categorical else "q" for c in encoded.columns]
    raw = model.booster.predict(xgb.DMatrix(encoded, feature_types=types, enable_categorical=True))
    return model.calibrator.apply(raw)


def test_batch_scores_equal_feast_online_features_scored_offline(
    engine: ScoringEngine, store: FeatureStore, model: WinProbabilityModel, ids: dict
) -> None:
    chosen = ids["open"][:60]
    as_of = [None if n % 3 else datetime(2017, 12, 1, 12, tzinfo=UTC) for n in range(60)]
    results = engine.score_ids(chosen, as_of)
    assert all(isinstance(r, dict) for r in results)
    request = [r["as_of"] for r in results]  # type: ignore[index]
    assert request[1] == datetime(2018, 1, 1, tzinfo=UTC)  # day after the newest daily stats
    assert request[0] == datetime(2017, 12, 1, 12, tzinfo=UTC)
    expected = _offline(model, online_service_frame(store, chosen, request))
    got = np.array([r["win_probability"] for r in results])  # type: ignore[index]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len({round(p, 6) for p in got}) > 5  # the scores actually differ between deals


def _same(got: object, expected: object) -> bool:
    missing = [v is None or (isinstance(v, float) and np.isnan(v)) for v in (got, expected)]
    if any(missing):
        return all(missing)
    if isinstance(expected, pd.Timestamp | datetime):
        return pd.Timestamp(got) == pd.Timestamp(expected)  # type: ignore[arg-type]
    if isinstance(expected, float | np.floating) and not isinstance(got, str):
        return float(got) == pytest.approx(float(expected), rel=1e-12)  # type: ignore[arg-type]
    return got == expected or str(got) == str(expected)


def test_every_feature_read_equals_feast_get_online_features(
    engine: ScoringEngine, store: FeatureStore, ids: dict
) -> None:
    """Value by value, the scorer's direct reads (two-key product x sector view included, null
    sector -> null features) equal what Feast's `get_online_features` serves."""
    chosen = ids["open"]
    collected = engine.collect(chosen)
    assert all(not isinstance(c, Exception) for c in collected)
    frame = online_service_frame(store, chosen, [c.as_of for c in collected])  # type: ignore[union-attr]
    columns = list(engine.spec.columns)
    sector_columns = [c for c in columns if c.startswith(f"{SECTOR_VIEW}__")]
    request_columns = [f"opportunity_request_features__{f}" for f in REQUEST_FEATURES]
    assert sector_columns and set(request_columns) <= set(columns)
    mismatches = [
        (c.opportunity_id, column, c.features[column], frame[column].iloc[n])  # type: ignore
        for n, c in enumerate(collected)
        for column in columns
        if not _same(c.features[column], frame[column].iloc[n])  # type: ignore[union-attr]
    ]
    assert mismatches == []
    sectors = store.get_online_features(
        features=["opportunity:sector"], entity_rows=[{"opportunity_id": i} for i in chosen]
    ).to_dict()["sector"]
    served = [c.features[sector_columns[0]] for c in collected]  # type: ignore[union-attr]
    # Both cases are exercised: deals with a sector get stats, deals without get nulls.
    assert any(s is not None and v is not None for s, v in zip(sectors, served, strict=True))
    assert any(s is None for s in sectors)
    assert all(v is None for s, v in zip(sectors, served, strict=True) if s is None)
    timestamps = [c.timestamps[SECTOR_VIEW] for c in collected]  # type: ignore[union-attr]
    assert any(t is not None for t in timestamps)


def test_entity_key_serialises_like_feast_for_several_join_keys() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    feast_key = EntityKey(
        join_keys=["product", "sector"],
        entity_values=[Value(string_val="GTX Pro"), Value(string_val="retail")],
    )
    ours = entity_key(("product", "sector"), ("GTX Pro", "retail"))
    assert serialize_entity_key(ours, 3) == serialize_entity_key(feast_key, 3)
    swapped = entity_key(("sector", "product"), ("retail", "GTX Pro"))
    assert serialize_entity_key(swapped, 3) == serialize_entity_key(feast_key, 3)
    assert serialize_entity_key(entity_key("product", "GTX Pro"), 3) != serialize_entity_key(
        feast_key, 3
    )
    with pytest.raises(ValueError, match="as many values"):
        entity_key(("product", "sector"), "GTX Pro")


def test_a_score_carries_value_contributions_version_and_freshness(
    engine: ScoringEngine, tables: dict[str, pd.DataFrame], ids: dict
) -> None:
    result = engine.score_one(ids["open"][0], top_k=3)
    assert result["model_name"] == "crm-test-model" and result["model_version"] == "7"
    assert result["profile"] == "local"
    assert result["expected_value"] == pytest.approx(
        result["win_probability"] * result["list_price"]
    )
    assert len(result["contributions"]) == 3
    sizes = [abs(c["contribution"]) for c in result["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    # Contributions + bias add up to the raw margin (no calibration in between).
    margin = result["base_margin"] + sum(
        c["contribution"] for c in engine.score_one(ids["open"][0], top_k=100)["contributions"]
    )
    raw = 1 / (1 + np.exp(-margin))
    assert engine.calibrator.apply(np.array([raw]))[0] == pytest.approx(
        result["win_probability"], abs=1e-5
    )
    newest = tables["sales_agent_daily_stats"]["event_timestamp"].max()
    assert result["feature_timestamps"]["sales_agent_daily_stats"] == newest.to_pydatetime()


def test_unknown_and_closed_deals_are_404_errors_with_a_reason(
    engine: ScoringEngine, ids: dict
) -> None:
    unknown, closed, good = engine.score_ids(["NO-SUCH-DEAL", ids["closed"][0], ids["open"][1]])
    assert isinstance(unknown, OpportunityNotFound) and unknown.status == 404
    assert "NO-SUCH-DEAL" in str(unknown)
    assert isinstance(closed, OpportunityClosed) and closed.status == 404
    assert "already closed" in str(closed)
    assert isinstance(good, dict)
    with pytest.raises(OpportunityNotFound):
        engine.score_one("NO-SUCH-DEAL")


def test_what_if_scores_explicit_values_like_the_model(
    engine: ScoringEngine, model: WinProbabilityModel
) -> None:
    series_levels = model.spec.categorical["product_profile__series"]
    features = {
        "product_profile__sales_price": 5_000,
        "product_profile__series": series_levels[0],
        "sales_agent_daily_stats__win_rate_all": 0.7,
        "account_profile__has_parent": True,
        "opportunity_request_features__days_open": 12,
    }
    result = engine.score_features(features, list_price=None)
    frame = pd.DataFrame([{c: features.get(c) for c in model.spec.columns}])
    expected = _offline(model, frame)[0]
    assert result["win_probability"] == pytest.approx(expected, abs=1e-6)
    assert result["expected_value"] == pytest.approx(expected * 5_000)
    assert result["opportunity_id"] is None


@pytest.mark.parametrize(
    ("features", "field"),
    [
        ({"no_such_feature": 1.0}, "no_such_feature"),
        (
            {"sales_agent_daily_stats__win_rate_all": "high"},
            "sales_agent_daily_stats__win_rate_all",
        ),
        ({"product_profile__series": "NOT-A-SERIES"}, "product_profile__series"),
    ],
)
def test_what_if_refuses_bad_values_naming_the_field(
    engine: ScoringEngine, features: dict, field: str
) -> None:
    with pytest.raises(InvalidFeatures) as caught:
        engine.score_features(features)
    assert caught.value.status == 422
    assert field in caught.value.fields and field in str(caught.value)


def test_the_event_loop_path_scores_exactly_as_the_blocking_one(
    engine: ScoringEngine, ids: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service awaits each store read and the model's work on other threads
    (`score_ids_async`); same steps, same scores."""
    import asyncio

    chosen = [*ids["open"][:20], "NO-SUCH-DEAL", ids["closed"][0]]
    reads: list[object] = []
    computed: list[object] = []

    async def io(read: Any) -> Any:
        reads.append(read)
        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def cpu(work: Any) -> Any:
        computed.append(work)
        return await asyncio.get_running_loop().run_in_executor(None, work)

    # SQLite is local (read inline): take the path of a networked store
    monkeypatch.setattr(type(engine.online), "remote", property(lambda _: True))
    awaited = asyncio.run(engine.score_ids_async(chosen, None, 3, io, cpu=cpu))
    blocking = engine.score_ids(chosen, None, 3)
    assert reads  # the reads went through `io`
    assert len(computed) == 1  # one model call for the batch, through `cpu`
    assert [type(r) for r in awaited] == [type(r) for r in blocking]
    for got, expected in zip(awaited, blocking, strict=True):
        if isinstance(expected, dict):
            assert got == expected


@pytest.mark.parametrize("value", [1e39, float("inf"), float("nan")])
def test_what_if_refuses_numbers_the_booster_cannot_take(
    engine: ScoringEngine, value: float
) -> None:
    """XGBoost scores float32: 1e39 would become inf and fail the whole call (issue 12, 1)."""
    with pytest.raises(InvalidFeatures) as caught:
        engine.score_features({"sales_agent_daily_stats__win_rate_all": value})
    assert caught.value.fields == ["sales_agent_daily_stats__win_rate_all"]
