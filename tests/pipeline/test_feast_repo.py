"""The Feast repo on the local profile: real Feast, DuckDB offline store, SQLite online store.

No servers: the registry, online store and lake live in a temporary CRM_HOME.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore

from feature_repo.definitions import (
    NoFeatureTablesError,
    committed_feature_objects,
    definitions,
)
from feature_tables.compute import compute_feature_tables, write_feature_tables
from feature_tables.store import apply, materialize, online_entity_rows
from infra.lake import Lake
from infra.settings import Settings
from tests.support.feature_reference import random_tables
from tests.support.profiles import open_store

AS_OF = date(2017, 12, 31)
SERVICE = "opportunity_scoring_v1"


@pytest.fixture(scope="module")
def source(local: Settings) -> dict[str, pd.DataFrame]:
    return random_tables(1200, 21)


@pytest.fixture(scope="module")
def november(source: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """An earlier snapshot: facts up to 2017-11-30 only."""
    return compute_feature_tables(source, as_of_end=date(2017, 11, 30))


@pytest.fixture(scope="module")
def store(local: Settings, november: dict[str, pd.DataFrame]) -> FeatureStore:
    return open_store(local, november)


@pytest.fixture(scope="module")
def loads(
    local: Settings, store: FeatureStore, source: dict[str, pd.DataFrame]
) -> dict[str, object]:
    """Materialise the November snapshot, then the December one on top, then nothing new.

    After each build the definitions are applied again (the `features` flow does): the sources
    name the build's physical objects."""
    lake = Lake.from_settings(local)
    first = materialize(store)
    november_objects = committed_feature_objects(lake)
    december = compute_feature_tables(source, as_of_end=AS_OF)
    write_feature_tables(lake, december)
    # Until the registry follows, it still points at November's objects, which stay: each
    # snapshot's build is its own (a reader in between still finds its data).
    store.refresh_registry()
    old_source = store.get_feature_view("opportunity").batch_source.path
    assert old_source == lake.uri(november_objects["opportunity"])
    assert Path(old_source).is_file()
    apply(store, local)
    second = materialize(store)
    third = materialize(store)
    return {"first": first, "second": second, "third": third, "features": december}


@pytest.fixture(scope="module")
def features(loads: dict[str, object]) -> dict[str, pd.DataFrame]:
    return loads["features"]  # type: ignore[return-value]


def test_apply_registers_every_definition(store: FeatureStore) -> None:
    views = {v.name for v in store.list_feature_views()}
    assert views == {
        "sales_agent_daily_stats",
        "account_daily_stats",
        "product_daily_stats",
        "product_sector_daily_stats",
        "sales_agent_profile",
        "account_profile",
        "product_profile",
        "opportunity",
    }
    for view in store.list_feature_views():
        assert view.description and view.owner and view.tags, view.name
    assert {e.name for e in store.list_entities()} >= {
        "opportunity",
        "sales_agent",
        "account",
        "product",
        "sector",
    }
    service = store.get_feature_service(SERVICE)
    served = {p.name for p in service.feature_view_projections}
    assert "opportunity" not in served  # the stage would leak the outcome
    assert "opportunity_request_features" in served
    assert "product_sector_daily_stats" in served
    cells = store.get_feature_view("product_sector_daily_stats")
    assert [e.name for e in cells.entity_columns] == ["product", "sector"]


def test_sources_follow_the_active_lake(store: FeatureStore, local: Settings) -> None:
    view = store.get_feature_view("sales_agent_daily_stats")
    folder = local.lake_root / "data-lake/features/sales_agent_daily_stats"
    path = Path(view.batch_source.path)
    assert path.parent.parent == folder and path.is_file()
    assert path.parent.name.startswith("snapshot=")  # each snapshot's build is its own
    assert path.name.startswith("sales_agent_daily_stats.") and path.suffix == ".parquet"


def test_sources_are_the_committed_physical_objects(
    store: FeatureStore, local: Settings, loads: dict[str, object]
) -> None:
    """Issue 12, defect 9: Feast reads the objects the features manifest committed."""
    lake = Lake.from_settings(local)
    objects = committed_feature_objects(lake)
    for view in store.list_feature_views():
        assert view.batch_source.path == lake.uri(objects[view.name])


def test_definitions_without_feature_tables_say_what_to_run(tmp_path: Path) -> None:
    lake = Lake.from_settings(Settings(profile="local", home=tmp_path / ".crm", _env_file=None))
    with pytest.raises(NoFeatureTablesError, match=r"No feature tables in .*run `crm features`"):
        definitions(lake)


def test_first_materialisation_is_full_then_incremental(
    loads: dict[str, dict[str, int]], november: dict[str, pd.DataFrame]
) -> None:
    december: dict[str, pd.DataFrame] = loads["features"]  # type: ignore[assignment]
    first, second, third = loads["first"], loads["second"], loads["third"]
    agents = len(november["sales_agent_profile"])
    assert first["sales_agent_daily_stats"] == agents
    assert first["opportunity"] == november["opportunity"].opportunity_id.nunique()
    # Data time, not wall clock: the December snapshot's days (dated 2017) are still loaded.
    opp = december["opportunity"]
    new_rows = opp[opp.event_timestamp > pd.Timestamp("2017-11-30 23:59:59", tz="UTC")]
    assert second["opportunity"] == new_rows.opportunity_id.nunique() > 0
    assert second["sales_agent_daily_stats"] == agents
    assert second["account_profile"] == len(december["account_profile"])  # static: full
    dynamic = {k: v for k, v in third.items() if not k.endswith("_profile")}
    assert dynamic == dict.fromkeys(dynamic, 0)  # nothing newer than what was loaded


def _entity_rows(features: dict[str, pd.DataFrame], n: int) -> list[dict[str, object]]:
    agents = features["sales_agent_profile"].sales_agent.tolist()
    accounts = features["account_profile"].account.tolist()
    sectors = dict(zip(accounts, features["account_profile"].sector, strict=True))
    products = features["product_profile"]["product"].tolist()
    rows = []
    for i in range(n):
        rows.append(
            {
                "sales_agent": agents[i % len(agents)],
                "account": accounts[(3 * i) % len(accounts)],
                "sector": sectors[accounts[(3 * i) % len(accounts)]],
                "product": products[i % len(products)],
                "engage_date": datetime(2017, 9 + i % 3, 1 + i % 20, tzinfo=UTC),
                "request_timestamp": datetime(2018, 1, 2, tzinfo=UTC),
            }
        )
    return rows


def test_online_equals_latest_offline_exactly(
    store: FeatureStore, loads: dict[str, object], features: dict[str, pd.DataFrame]
) -> None:
    service = store.get_feature_service(SERVICE)
    rows = _entity_rows(features, 15)
    online = store.get_online_features(
        features=service, entity_rows=rows, full_feature_names=True
    ).to_df()
    entity_df = pd.DataFrame(rows)
    # After the last row (2017-12-31 23:59:59) and within the stats views' 1-day TTL.
    entity_df["event_timestamp"] = pd.Timestamp("2018-01-01 06:00", tz="UTC")
    offline = store.get_historical_features(
        entity_df=entity_df, features=service, full_feature_names=True
    ).to_df()
    order = ["sales_agent", "account", "product", "engage_date"]
    offline = offline.sort_values(order)
    online = online.assign(engage_date=entity_df.engage_date).sort_values(order)
    columns = [c for c in online.columns if "__" in c]
    assert len(columns) >= 20
    for column in columns:
        got = online[column].tolist()
        want = offline[column].tolist()
        assert got == want, column
    # And both equal the newest row of the feature table itself.
    last = features["sales_agent_daily_stats"]
    last = last[last.event_timestamp == last.event_timestamp.max()].set_index("sales_agent")
    for _, row in online.iterrows():
        agent_row = last.loc[row.sales_agent]
        assert row["sales_agent_daily_stats__win_rate_90d"] == agent_row.win_rate_90d
        assert row["sales_agent_daily_stats__open_pipeline_value"] == agent_row.open_pipeline_value
    cells = features["product_sector_daily_stats"]
    cells = cells[cells.event_timestamp == cells.event_timestamp.max()]
    cells = cells.set_index(["product", "sector"])
    for _, row in online.iterrows():
        cell = cells.loc[(row["product"], row["sector"])]
        assert row["product_sector_daily_stats__win_rate_all"] == cell.win_rate_all
        assert row["product_sector_daily_stats__closed_90d"] == cell.closed_90d
    assert online["product_sector_daily_stats__closed_all"].sum() > 0


def test_historical_features_are_point_in_time(
    store: FeatureStore, features: dict[str, pd.DataFrame]
) -> None:
    stats = features["sales_agent_daily_stats"]
    agent = stats.sales_agent.iloc[0]
    day = pd.Timestamp("2017-06-15", tz="UTC")  # start of the day: sees the end of 06-14
    entity_df = pd.DataFrame(
        {
            "sales_agent": [agent],
            "event_timestamp": [day],
        }
    )
    got = store.get_historical_features(
        entity_df=entity_df, features=["sales_agent_daily_stats:closed_all"]
    ).to_df()
    want = stats[(stats.sales_agent == agent) & (stats.event_timestamp < day)].iloc[-1]
    assert want.event_timestamp == pd.Timestamp("2017-06-14 23:59:59", tz="UTC")
    assert got.closed_all.iloc[0] == want.closed_all


def test_on_demand_features(store: FeatureStore, loads: dict[str, object]) -> None:
    row = {
        "product": "GTK 500",
        "engage_date": datetime(2017, 12, 1, tzinfo=UTC),
        "request_timestamp": datetime(2017, 12, 11, 12, tzinfo=UTC),
    }
    got = store.get_online_features(
        features=[
            "opportunity_request_features:days_open",
            "opportunity_request_features:list_price_tier",
            "opportunity_request_features:engage_month",
            "opportunity_request_features:engage_quarter_end",
        ],
        entity_rows=[
            row,
            {**row, "product": "MG Special", "engage_date": datetime(2017, 11, 30, tzinfo=UTC)},
            {**row, "engage_date": None},
        ],
    ).to_dict()
    assert got["days_open"] == [10, 11, 0]
    assert got["list_price_tier"] == [2, 0, 2]
    assert got["engage_month"] == [12, 11, 0]
    assert got["engage_quarter_end"] == [1, 0, 0]


def test_open_deal_without_account_gets_null_account_features(
    store: FeatureStore, loads: dict[str, object]
) -> None:
    row = {
        "sales_agent": "agent_01",
        "account": None,
        "sector": None,
        "product": "GTX Pro",
        "engage_date": None,
        "request_timestamp": datetime(2018, 1, 1, tzinfo=UTC),
    }
    got = store.get_online_features(
        features=store.get_feature_service(SERVICE),
        entity_rows=online_entity_rows([row]),
        full_feature_names=True,
    ).to_dict()
    assert got["account_daily_stats__closed_all"] == [None]
    assert got["account_profile__sector"] == [None]
    assert got["product_sector_daily_stats__win_rate_all"] == [None]
    assert got["product_daily_stats__closed_all"][0] is not None
    assert got["sales_agent_daily_stats__closed_all"][0] is not None
    assert got["opportunity_request_features__days_open"] == [0]
