"""The stack's PostgreSQL online store and SQL registry, with the offline data on local disk.

Needs the PostgreSQL at the stack's address (databases `crm_feast_online`/`crm_feast_registry`
owned by role `crm`), so it is an integration test; it runs in its own Feast project and
removes it afterwards, leaving the `crm` project alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pandas as pd
import psycopg
import pytest
from feast import FeatureStore

from feature_repo.definitions import definitions
from feature_tables.compute import compute_feature_tables, write_feature_tables
from feature_tables.postgres_online import STORE_TYPE
from feature_tables.store import feature_store, materialize
from infra.lake import Lake
from infra.settings import Settings
from tests.support.feature_reference import random_tables

VIEWS_SERVED = (
    "sales_agent_daily_stats",
    "account_daily_stats",
    "product_daily_stats",
    "product_sector_daily_stats",
)


@pytest.fixture(scope="module")
def pg_store(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FeatureStore, dict]]:
    """The test stack's PostgreSQL registry and online store, in a project of this module's."""
    home = tmp_path_factory.mktemp("crm-pg") / ".crm"
    project = f"t_{uuid.uuid4().hex[:10]}"
    stack = stack_settings.model_copy(update={"home": home, "feast_project": project})
    features = compute_feature_tables(random_tables(800, 4), as_of_end=date(2017, 12, 31))
    lake = Lake.from_settings(Settings(profile="local", home=home, _env_file=None))
    write_feature_tables(lake, features)  # a local-disk lake, read by the PostgreSQL-backed store
    store = feature_store(stack)
    try:
        store.apply(definitions(lake))
        store.refresh_registry()
        yield store, features
    finally:
        with psycopg.connect(stack.pg_dsn(stack.pg_db_feast_online)) as conn:
            for view in store.list_feature_views():
                conn.execute(f'DROP TABLE IF EXISTS "{project}_{view.name}"')
        store.delete_project(project)


def test_sql_registry_and_postgres_online_store(pg_store) -> None:
    store, features = pg_store
    assert store.config.registry.registry_type == "sql"
    assert store.config.online_store.type == STORE_TYPE  # Feast's store with COPY writes
    assert store.get_feature_service("opportunity_scoring_v1").name == "opportunity_scoring_v1"
    first = materialize(store)
    assert first["sales_agent_daily_stats"] == len(features["sales_agent_profile"])
    assert materialize(store)["opportunity"] == 0  # incremental: nothing new
    stats = features["sales_agent_daily_stats"]
    last = stats[stats.event_timestamp == stats.event_timestamp.max()]
    rows = [{"sales_agent": agent} for agent in last.sales_agent]
    online = store.get_online_features(
        features=["sales_agent_daily_stats:win_rate_90d", "sales_agent_daily_stats:closed_all"],
        entity_rows=rows,
    ).to_dict()
    assert online["win_rate_90d"] == last.win_rate_90d.tolist()
    assert online["closed_all"] == last.closed_all.tolist()
    offline = store.get_historical_features(
        entity_df=pd.DataFrame(
            {
                "sales_agent": last.sales_agent.tolist(),
                "event_timestamp": datetime(2018, 1, 1, 6, tzinfo=UTC),
            }
        ),
        features=["sales_agent_daily_stats:win_rate_90d"],
    ).to_df()
    by_agent = offline.set_index("sales_agent").win_rate_90d
    assert [by_agent[a] for a in last.sales_agent] == online["win_rate_90d"]


def test_serving_reads_every_stats_view_like_get_online_features(pg_store) -> None:
    """The scorer's one-round-trip PostgreSQL read (two-key product x sector view included)
    returns exactly what Feast's `get_online_features` serves for the same entities."""
    from serving.online import OnlineReader, ViewReader

    store, features = pg_store
    materialize(store)
    served = {
        p.name for p in store.get_feature_service("opportunity_scoring_v1").feature_view_projections
    }
    assert set(VIEWS_SERVED) <= served
    online = OnlineReader(store)
    requests = []
    for name in VIEWS_SERVED:
        view = store.get_feature_view(name)
        join_keys = tuple(c.name for c in view.entity_columns)
        table = features[name]
        last = table[table.event_timestamp == table.event_timestamp.max()].head(40)
        keys = [
            row[0] if len(row) == 1 else tuple(row)
            for row in last[list(join_keys)].itertuples(index=False)
        ]
        requests.append((ViewReader(view, join_keys, ["win_rate_90d", "closed_all"]), keys, last))
    rows = online.read_many([(reader, keys) for reader, keys, _ in requests])
    assert online.postgres is not None  # our own PostgreSQL connection did the reads
    for reader, keys, last in requests:
        expected = store.get_online_features(
            features=[f"{reader.name}:win_rate_90d", f"{reader.name}:closed_all"],
            entity_rows=last[list(reader.join_keys)].to_dict("records"),
        ).to_dict()
        got = [rows[reader.name][key] for key in keys]
        assert all(row is not None for row in got), reader.name
        assert [row[1]["win_rate_90d"] for row in got] == expected["win_rate_90d"]
        assert [row[1]["closed_all"] for row in got] == expected["closed_all"]
    assert len(requests[-1][0].join_keys) == 2  # the two-key view was really read
