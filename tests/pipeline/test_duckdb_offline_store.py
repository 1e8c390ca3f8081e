"""The profiles' DuckDB offline store (ASOF joins) against Feast's stock DuckDB store and the
slow reference join (`tests.support.training_data.point_in_time_features`).

Two stores over one registry and one lake: the local profile's (`CRMDuckDBOfflineStore`) and
the same with `offline_store: {type: duckdb}`. Entity frames carry the edge cases: many rows
sharing keys and a time, times before any feature row and past the daily views' TTL, unknown
and null keys. A view of its own adds what the repo's views lack: a created timestamp that
breaks ties, a field mapping and plain (not full) feature names, checked against values
written out by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64

from feature_repo.entities import OPPORTUNITY_ID
from feature_tables.compute import compute_feature_tables
from feature_tables.duckdb_offline_store import CRMDuckDBOfflineStore
from infra.settings import PROJECT_ROOT, Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE
from serving.batch import open_deal_entities
from tests.pipeline.test_ray_profile import assert_same_frame
from tests.support.feature_reference import random_tables
from tests.support.profiles import open_store
from tests.support.training_data import point_in_time_features
from training.examples import entity_frame, historical_features
from training.features import TIMESTAMP

AS_OF = date(2017, 12, 31)
ROW = "row"


@pytest.fixture(scope="module")
def source(local: Settings) -> dict[str, pd.DataFrame]:
    return random_tables(600, 21)


@pytest.fixture(scope="module")
def tables(source: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return compute_feature_tables(source, as_of_end=AS_OF)


@pytest.fixture(scope="module")
def ours(local: Settings, tables: dict[str, pd.DataFrame]) -> FeatureStore:
    store = open_store(local, tables)
    assert isinstance(store._get_provider().offline_store, CRMDuckDBOfflineStore)
    return store


@pytest.fixture(scope="module")
def stock(local: Settings, ours: FeatureStore) -> FeatureStore:
    """The local profile's registry and lake with Feast's own DuckDB offline store."""
    raw = yaml.safe_load(local.feature_store_yaml.read_text())
    raw |= {
        "project": local.feast_project,
        "registry": {
            "registry_type": "file",
            "path": str(local.home.resolve() / "feast_registry.db"),
        },
        "online_store": {"type": "sqlite", "path": str(local.home.resolve() / "stock_online.db")},
        "offline_store": {"type": "duckdb"},
    }
    config = RepoConfig(**raw)
    config.repo_path = PROJECT_ROOT
    return FeatureStore(repo_path=str(PROJECT_ROOT), config=config)


def edge_entities(source: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Closed deals at every step of their life, then the same deals moved to the edges."""
    entities = entity_frame(source[SALES_PIPELINE], source[ACCOUNTS])
    assert entities.duplicated(["sales_agent", TIMESTAMP]).any()  # ties on the entity side
    some = entities.iloc[:40]
    early = some.assign(**{TIMESTAMP: pd.Timestamp("2015-01-01", tz="UTC")})  # before any row
    stale = some.assign(**{TIMESTAMP: pd.Timestamp("2018-01-20", tz="UTC")})  # past the TTL
    unknown = some.assign(sales_agent="agent_zz", product="no such product")  # missing entities
    twins = pd.concat([some, some])  # the very same rows twice
    frame = pd.concat([entities, early, stale, unknown, twins], ignore_index=True)
    frame["request_timestamp"] = frame[TIMESTAMP]
    return frame


def test_training_frame_equals_stock_feast_and_the_reference(
    ours: FeatureStore,
    stock: FeatureStore,
    source: dict[str, pd.DataFrame],
    tables: dict[str, pd.DataFrame],
) -> None:
    entities = edge_entities(source).assign(**{ROW: lambda f: range(len(f))})
    got = historical_features(ours, entities.copy())
    want = historical_features(stock, entities.copy())
    assert got[ROW].tolist() == list(range(len(entities)))  # in the entity rows' order, all kept
    assert_same_frame(got, want, [ROW])
    reference = point_in_time_features(entities.copy(), tables)
    assert_same_frame(got[reference.columns], reference, [ROW])
    # The edges are there: nothing before the first row or for unknown keys, profiles past TTL.
    for name, expect_null in (
        ("sales_agent_daily_stats__win_rate_all", True),
        ("sales_agent_profile__manager", False),
    ):
        at = got[TIMESTAMP] == pd.Timestamp("2018-01-20", tz="UTC")
        assert got.loc[at, name].isna().all() == expect_null, name
    assert got.loc[got[TIMESTAMP].dt.year == 2015, "account_daily_stats__closed_all"].isna().all()
    unknown = got["sales_agent"] == "agent_zz"
    assert got.loc[unknown, "sales_agent_profile__manager"].isna().all()
    assert got.loc[unknown, "account_profile__sector"].notna().all()


@pytest.mark.parametrize(
    "at",
    [datetime(2018, 1, 1, tzinfo=UTC), datetime(2018, 1, 20, tzinfo=UTC)],
    ids=["scoring-time", "past-ttl"],
)
def test_open_deals_with_null_keys_equal_stock_feast(
    ours: FeatureStore, stock: FeatureStore, source: dict[str, pd.DataFrame], at: datetime
) -> None:
    entities = open_deal_entities(source[SALES_PIPELINE], source[ACCOUNTS], at)
    assert entities["account"].isna().any() and entities["account"].notna().any()
    got = historical_features(ours, entities.copy())
    assert got[OPPORTUNITY_ID].tolist() == entities[OPPORTUNITY_ID].tolist()
    assert_same_frame(got, historical_features(stock, entities.copy()), [OPPORTUNITY_ID])
    assert got.loc[entities["account"].isna().to_numpy(), "account_profile__sector"].isna().all()


# A view of its own: created timestamps, a field mapping, a 1-day TTL.
CUSTOMER = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
DAY = datetime(2020, 3, 1, tzinfo=UTC)


def customer_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "event_timestamp": [DAY, DAY, DAY + timedelta(days=2), DAY, DAY],
            "created": [DAY, DAY + timedelta(hours=1), DAY, DAY + timedelta(hours=2), DAY],
            "raw_score": [1.0, 2.0, 3.0, 10.0, 20.0],  # named `score` by the field mapping
            "visits": [1, 2, 3, 10, 20],
        }
    )


def customer_store(folder: Path, offline_type: str) -> FeatureStore:
    folder.mkdir(exist_ok=True)
    path = folder.parent / "customer.parquet"
    customer_rows().to_parquet(path, index=False)
    source = FileSource(
        name="customer_source",
        path=str(path),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        field_mapping={"raw_score": "score"},
    )
    view = FeatureView(
        name="customer_stats",
        entities=[CUSTOMER],
        ttl=timedelta(days=1),
        schema=[Field(name="score", dtype=Float64), Field(name="visits", dtype=Int64)],
        source=source,
    )
    config = RepoConfig(
        project="pit_edges",
        provider="local",
        registry={"registry_type": "file", "path": str(folder / "registry.db")},
        online_store={"type": "sqlite", "path": str(folder / "online.db")},
        offline_store={"type": offline_type},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(repo_path=str(folder), config=config)
    store.apply([CUSTOMER, view])
    return store


def test_created_timestamp_field_mapping_and_ttl_by_hand(tmp_path: Path) -> None:
    entities = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", None, "a"],
            "event_timestamp": [
                DAY - timedelta(seconds=1),  # before any row
                DAY,  # the tie at DAY: the later `created` (score 2) wins
                DAY + timedelta(days=1),  # the same row, exactly at the TTL's edge
                DAY + timedelta(days=1, seconds=1),  # past the TTL
                DAY + timedelta(hours=5),  # b's tie: created +2h (score 10) wins
                DAY,  # no rows for c
                DAY,  # a null key
                DAY + timedelta(days=3),  # the newer row (score 3)
            ],
        }
    )
    features = ["customer_stats:score", "customer_stats:visits"]
    results = {}
    for kind in ("duckdb", "feature_tables.duckdb_offline_store.CRMDuckDBOfflineStore"):
        store = customer_store(tmp_path / kind.rsplit(".", 1)[-1], kind)
        results[kind] = store.get_historical_features(
            entity_df=entities.copy(), features=features
        ).to_df()
    got = results["feature_tables.duckdb_offline_store.CRMDuckDBOfflineStore"]
    assert [None if pd.isna(v) else v for v in got["score"]] == [
        None, 2.0, 2.0, None, 10.0, None, None, 3.0
    ]  # fmt: skip
    assert [None if pd.isna(v) else int(v) for v in got["visits"]] == [
        None, 2, 2, None, 10, None, None, 3
    ]  # fmt: skip
    assert_same_frame(
        got.assign(**{ROW: range(len(got))}),
        _in_order(results["duckdb"], entities),
        [ROW],
    )


def _in_order(frame: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's stock join returns rows in no set order: put them back in the entity rows'."""
    keys = entities.assign(**{ROW: range(len(entities))})
    keys["customer_id"] = keys["customer_id"].fillna("<null>")
    frame = frame.assign(customer_id=frame["customer_id"].fillna("<null>"))
    frame["event_timestamp"] = frame["event_timestamp"].astype(keys["event_timestamp"].dtype)
    merged = keys.merge(frame, on=["customer_id", "event_timestamp"], validate="one_to_one")
    return merged.assign(customer_id=entities["customer_id"].to_numpy()[merged[ROW]])
