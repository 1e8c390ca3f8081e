"""ScoringEngine on a real local Feast store (SQLite online, DuckDB offline) in a temp folder.

The model is a small real XGBoost booster trained here on the store's own online features, with
its spec's categorical keys sorted as MLflow metadata returns them. Scores must equal Feast's
`get_online_features` + `FeatureSpec.encode` + the booster, to 1e-6.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from feast import FeatureStore

from feature_tables import compute_feature_tables, write_feature_tables
from feature_tables.store import apply, feature_store, materialize
from infra.lake import Lake
from infra.settings import Settings, get_settings
from serving.errors import InvalidFeatures, OpportunityClosed, OpportunityNotFound
from serving.scorer import FEATURE_SERVICE, LoadedModel, ScoringEngine
from tests.unit.feature_reference import random_tables
from training.features import FeatureSpec, feature_columns
from training.models import Calibrator, WinProbabilityModel

pytestmark = pytest.mark.unit

AS_OF = date(2017, 12, 31)
OPP_FEATURES = [f"opportunity:{f}" for f in ("sales_agent", "account", "product", "engage_date")]


def _fresh_feature_repo() -> None:
    for name in [m for m in sys.modules if m == "feature_repo" or m.startswith("feature_repo.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("crm") / ".crm"
    saved = {k: os.environ.get(k) for k in ("CRM_HOME", "CRM_PROFILE")}
    os.environ.update({"CRM_HOME": str(home), "CRM_PROFILE": "local"})
    get_settings.cache_clear()
    _fresh_feature_repo()
    try:
        yield get_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        _fresh_feature_repo()


@pytest.fixture(scope="module")
def tables(local: Settings) -> dict[str, pd.DataFrame]:
    tables = compute_feature_tables(random_tables(600, 7), as_of_end=AS_OF)
    write_feature_tables(Lake.from_settings(local), tables)
    return tables


@pytest.fixture(scope="module")
def store(local: Settings, tables: dict[str, pd.DataFrame]) -> FeatureStore:
    fs = feature_store(local)
    apply(fs, local)
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


def _service_frame(
    store: FeatureStore, opportunity_ids: list[str], request: list[datetime]
) -> pd.DataFrame:
    """Feast's own online features of the feature service for these deals (the reference)."""
    opp = store.get_online_features(
        features=OPP_FEATURES, entity_rows=[{"opportunity_id": i} for i in opportunity_ids]
    ).to_dict()
    rows = [
        {
            "sales_agent": opp["sales_agent"][n] or "",
            "account": opp["account"][n] or "",  # unknown key: Feast returns nulls
            "product": opp["product"][n] or "",
            "engage_date": opp["engage_date"][n],
            "request_timestamp": request[n],
        }
        for n in range(len(opportunity_ids))
    ]
    service = store.get_feature_service(FEATURE_SERVICE)
    return store.get_online_features(
        features=service, entity_rows=rows, full_feature_names=True
    ).to_df()


@pytest.fixture(scope="module")
def model(store: FeatureStore, ids: dict[str, list[str]]) -> WinProbabilityModel:
    train_ids = ids["open"][:150] + ids["closed"][:150]
    frame = _service_frame(store, train_ids, [datetime(2018, 1, 1, tzinfo=UTC)] * len(train_ids))
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
    expected = _offline(model, _service_frame(store, chosen, request))
    got = np.array([r["win_probability"] for r in results])  # type: ignore[index]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len({round(p, 6) for p in got}) > 5  # the scores actually differ between deals


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
