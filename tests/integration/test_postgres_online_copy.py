"""The COPY write paths of the PostgreSQL online store leave what Feast's own write leaves.

The same feature tables (tens of thousands of opportunities, materialised in several batches) go
into three Feast projects on one real PostgreSQL database: one through Feast's stock
`PostgreSQLOnlineStore` and local engine (row-by-row `INSERT ... ON CONFLICT`), one through
`feature_tables.postgres_online` (Feast's protos, COPY + one upsert), one through that store and
`feature_tables.bulk_engine` (rows encoded from Arrow by column, COPY + one upsert, two batches
at a time). Every table
holds the same rows, byte for byte, and `get_online_features` returns the
same values for a sample of entities; a second materialisation over rows already there (the
upsert) changes nothing.
Needs only the machine's PostgreSQL (the stack's admin DSN); the database is dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from feast import FeatureStore
from psycopg import sql

from feature_repo.definitions import definitions
from feature_tables.bulk_engine import ENGINE_TYPE
from feature_tables.compute import compute_feature_tables, write_feature_tables
from feature_tables.postgres_online import STORE_TYPE
from feature_tables.store import materialize, repo_config
from infra.lake import Lake
from infra.settings import PROJECT_ROOT, Settings
from tests.support.feature_reference import random_tables

OPPORTUNITIES = 30_000
BATCH_ROWS = 7_000  # several batches per view, one partly filled
SAMPLE = 500
# This config's online tables have no value_num (Feast adds it for its OpenAI-compatible store);
# tests/unit/test_online_rows.py holds that column equal too.
COLUMNS = ("entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A database of its own on the local PostgreSQL; settings of a stack profile using it."""
    admin = Settings(_env_file=None).pg_admin_dsn
    name = f"crm_copytest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    home = tmp_path_factory.mktemp("crm-copy") / ".crm"
    settings = Settings(
        profile="stack",
        home=home,
        pg_host="127.0.0.1",
        pg_user="postgres",
        pg_password="unused-trust-auth",  # the machine's PostgreSQL trusts loopback
        pg_db_feast_online=name,
        _env_file=None,
    )
    try:
        yield settings
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            con.execute(drop.format(sql.Identifier(name)))


def _store(
    settings: Settings, folder: Path, project: str, store_type: str, engine: dict[str, Any]
) -> FeatureStore:
    config = repo_config(settings, folder / f"{project}.db")
    raw = config.model_dump(by_alias=True, exclude_none=True)
    raw["project"] = project
    raw["online_store"]["type"] = store_type
    raw["batch_engine"] = engine
    raw["materialization"] = {"online_write_batch_size": BATCH_ROWS}
    raw["repo_path"] = PROJECT_ROOT
    from feast.repo_config import RepoConfig

    return FeatureStore(repo_path=str(PROJECT_ROOT), config=RepoConfig(**raw))


@pytest.fixture(scope="module")
def feature_tables() -> dict[str, pd.DataFrame]:
    return compute_feature_tables(random_tables(OPPORTUNITIES, 5), as_of_end=date(2017, 12, 31))


@pytest.fixture(scope="module")
def stores(database: Settings, feature_tables: dict[str, pd.DataFrame]) -> dict[str, FeatureStore]:
    """Feast's store, ours with Feast's engine, ours with ours: the same feature tables each."""
    features = feature_tables
    lake = Lake.from_settings(Settings(profile="local", home=database.home, _env_file=None))
    write_feature_tables(lake, features)
    folder = database.home
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    local = {"type": "local"}
    paths = {"feast": ("postgres", local), "copy": (STORE_TYPE, local)}
    paths["bulk"] = (STORE_TYPE, {"type": ENGINE_TYPE, "write_concurrency": 2})
    for name, (store_type, engine) in paths.items():
        store = _store(database, folder, f"p_{name}_{uuid.uuid4().hex[:6]}", store_type, engine)
        store.apply(definitions(lake))
        store.refresh_registry()
        materialize(store)
        out[name] = store
    return out


def _table(store: FeatureStore, view: str) -> pd.DataFrame:
    online = store.config.online_store
    dsn = f"postgresql://{online.user}@{online.host}:{online.port}/{online.database}"
    with psycopg.connect(dsn, connect_timeout=5) as con:
        query = sql.SQL("SELECT {} FROM {} ORDER BY entity_key, feature_name").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            sql.Identifier(f"{store.project}_{view}"),
        )
        rows = con.execute(query).fetchall()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_the_copy_store_and_engine_are_selected_by_class_path(
    stores: dict[str, FeatureStore],
) -> None:
    for name in ("copy", "bulk"):
        online = stores[name]._get_provider().online_store
        assert type(online).__module__ == "feature_tables.postgres_online"
        assert stores[name].config.materialization_config.online_write_batch_size == BATCH_ROWS
    engine = stores["bulk"]._get_provider().batch_engine
    assert type(engine).__module__ == "feature_tables.bulk_engine"


def test_every_online_table_holds_the_same_rows(stores: dict[str, FeatureStore]) -> None:
    views = [v.name for v in stores["feast"].list_feature_views() if v.online]
    opportunity_rows = 0
    for view in views:
        feasts = _table(stores["feast"], view)
        assert len(feasts) > 0, view
        for name in ("copy", "bulk"):
            ours = _table(stores[name], view)
            pd.testing.assert_frame_equal(ours, feasts, obj=f"{view} ({name})")
        if view == "opportunity":
            opportunity_rows = feasts.entity_key.nunique()
    assert opportunity_rows > BATCH_ROWS  # the view went through several batches


def test_online_features_equal_on_a_sample(
    stores: dict[str, FeatureStore], feature_tables: dict[str, pd.DataFrame]
) -> None:
    for view in stores["feast"].list_feature_views():
        if not view.online:
            continue
        keys = [column.name for column in view.entity_columns]
        sample = feature_tables[view.name][keys].drop_duplicates()
        sample = sample.sample(min(SAMPLE, len(sample)), random_state=0)
        rows = sample.to_dict("records")
        names = [f"{view.name}:{feature.name}" for feature in view.features]
        read = {
            name: store.get_online_features(features=names, entity_rows=rows).to_dict()
            for name, store in stores.items()
        }
        assert read["copy"] == read["feast"], view.name
        assert read["bulk"] == read["feast"], view.name
        values = [v for k, vs in read["copy"].items() if k not in keys for v in vs]
        assert any(v is not None for v in values), view.name


@pytest.mark.parametrize("name", ["copy", "bulk"])
def test_materialising_again_upserts_without_change(
    stores: dict[str, FeatureStore], name: str
) -> None:
    before = _table(stores[name], "opportunity")
    materialize(stores[name], full=True)
    pd.testing.assert_frame_equal(_table(stores[name], "opportunity"), before)


def test_an_entity_twice_in_one_batch_keeps_its_newest_row(
    stores: dict[str, FeatureStore], feature_tables: dict[str, pd.DataFrame]
) -> None:
    store = stores["copy"]
    rows = feature_tables["sales_agent_daily_stats"]
    agent = rows.sales_agent.iloc[0]
    mine = rows[rows.sales_agent == agent].sort_values("event_timestamp").tail(2)
    assert mine.win_rate_90d.nunique() == 2 or mine.closed_all.nunique() == 2
    store.write_to_online_store("sales_agent_daily_stats", mine.iloc[::-1])  # newest first
    names = ["sales_agent_daily_stats:win_rate_90d", "sales_agent_daily_stats:closed_all"]
    online = store.get_online_features(features=names, entity_rows=[{"sales_agent": agent}])
    newest = mine.iloc[-1]
    assert online.to_dict()["win_rate_90d"] == [newest.win_rate_90d]
    assert online.to_dict()["closed_all"] == [newest.closed_all]
