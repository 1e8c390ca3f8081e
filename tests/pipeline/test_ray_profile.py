"""The cluster profile's Feast stores on a real local Ray: the same answers as the DuckDB store.

One small snapshot of feature tables on the local lake, two stores over the same registry:
the local profile's (DuckDB offline store, local engine) and one with the cluster profile's
`offline_store` and `batch_engine` taken from `feature_repo/cluster/feature_store.yaml` (Ray
offline store, Ray compute engine). The same entity frames and the same feature service must
give the same frames, and materialising through the Ray engine the same online values.
Ray runs bounded (2 CPUs, a 256 MB object store) and is shut down at the end of the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from feature_repo.entities import OPPORTUNITY_ID
from feature_repo.feature_services import SCORING_SERVICE
from feature_tables.compute import compute_feature_tables
from feature_tables.store import apply, materialize, online_entity_rows
from infra.ray_runtime import ray_session
from infra.settings import PROJECT_ROOT, Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE
from serving.batch import open_deal_entities
from tests.support.feature_reference import random_tables
from tests.support.profiles import open_store
from training.examples import entity_frame, historical_features
from training.features import TIMESTAMP

AS_OF = date(2017, 12, 31)
CLUSTER_YAML = PROJECT_ROOT / "feature_repo" / "cluster" / "feature_store.yaml"
RAY_PROCESSES = ("raylet", "gcs_server")


@pytest.fixture(scope="module")
def source(local: Settings) -> dict[str, pd.DataFrame]:
    return random_tables(600, 21)


@pytest.fixture(scope="module")
def duck(local: Settings, source: dict[str, pd.DataFrame]) -> FeatureStore:
    return open_store(local, compute_feature_tables(source, as_of_end=AS_OF))


@pytest.fixture(scope="module")
def ray_up(local: Settings) -> Iterator[Settings]:
    settings = local.model_copy(update={"ray_num_cpus": 2, "ray_object_store_mb": 256})
    with ray_session(settings):
        yield settings
    assert not _ray_children(), "Ray left processes behind"


@pytest.fixture(scope="module")
def on_ray(ray_up: Settings, duck: FeatureStore) -> FeatureStore:
    """The local registry, a SQLite online store of its own, the cluster profile's Ray stores."""
    home = ray_up.home.resolve()
    raw = yaml.safe_load(ray_up.feature_store_yaml.read_text())
    cluster = yaml.safe_load(CLUSTER_YAML.read_text())
    raw |= {
        "project": ray_up.feast_project,
        "registry": {"registry_type": "file", "path": str(home / "feast_registry.db")},
        "online_store": {"type": "sqlite", "path": str(home / "ray_online_store.db")},
        "offline_store": cluster["offline_store"],
        "batch_engine": cluster["batch_engine"],
    }
    config = RepoConfig(**raw)
    config.repo_path = PROJECT_ROOT
    store = FeatureStore(repo_path=str(PROJECT_ROOT), config=config)
    apply(store, ray_up)  # the same definitions; creates this online store's tables
    return store


def _ray_children() -> list[str]:
    children = psutil.Process().children(recursive=True)
    return [p.name() for p in children if p.is_running() and p.name() in RAY_PROCESSES]


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame, order: list[str]) -> None:
    """Same rows and columns; numbers equal to 1e-9, everything else exactly, nulls alike."""
    assert len(got) == len(want) > 0
    assert sorted(got.columns) == sorted(want.columns)
    got = got.sort_values(order, ignore_index=True)
    want = want.sort_values(order, ignore_index=True)
    for column in want.columns:
        a, b = got[column], want[column]
        if pd.api.types.is_datetime64_any_dtype(b):
            assert (a.isna() == b.isna()).all(), column
            assert (a.dropna().dt.tz_convert(UTC) == b.dropna().dt.tz_convert(UTC)).all(), column
        elif pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(
                pd.to_numeric(a).astype("float64"),
                pd.to_numeric(b).astype("float64"),
                rtol=0,
                atol=1e-9,
                equal_nan=True,
                err_msg=column,
            )
        else:
            assert [None if pd.isna(v) else v for v in a] == [
                None if pd.isna(v) else v for v in b
            ], column


def test_ray_runs_bounded(ray_up: Settings) -> None:
    import ray

    assert ray.is_initialized()
    resources = ray.cluster_resources()
    assert resources["CPU"] == 2
    assert resources["object_store_memory"] == 256 * 1024 * 1024
    assert set(_ray_children()) == set(RAY_PROCESSES)


def test_training_frame_equals_duckdb(
    duck: FeatureStore, on_ray: FeatureStore, source: dict[str, pd.DataFrame]
) -> None:
    """Closed deals as of every step of their life: many rows share an agent and a day."""
    entities = entity_frame(source[SALES_PIPELINE], source[ACCOUNTS])
    assert entities.duplicated(["sales_agent", TIMESTAMP]).any()
    want = historical_features(duck, entities.copy())
    got = historical_features(on_ray, entities.copy())
    assert_same_frame(got, want, [OPPORTUNITY_ID, TIMESTAMP])
    assert want["account_profile__revenue"].notna().all()


@pytest.mark.parametrize(
    "at",
    [
        datetime(2018, 1, 1, tzinfo=UTC),  # the scoring time of the build: within every TTL
        datetime(2018, 1, 20, tzinfo=UTC),  # past the daily stats' 1-day TTL: they are null
    ],
    ids=["scoring-time", "past-ttl"],
)
def test_open_deals_equal_duckdb(
    duck: FeatureStore, on_ray: FeatureStore, source: dict[str, pd.DataFrame], at: datetime
) -> None:
    """Every open deal at one time, some without an account (null keys keep their row)."""
    entities = open_deal_entities(source[SALES_PIPELINE], source[ACCOUNTS], at)
    assert entities["account"].isna().any() and entities["account"].notna().any()
    want = historical_features(duck, entities.copy())
    got = historical_features(on_ray, entities.copy())
    assert_same_frame(got, want, [OPPORTUNITY_ID])
    stale = want["sales_agent_daily_stats__win_rate_all"].isna().all()
    assert stale == (at.day == 20)


def test_materialising_through_the_ray_engine_equals_the_local_engine(
    duck: FeatureStore, on_ray: FeatureStore, source: dict[str, pd.DataFrame]
) -> None:
    loaded_locally = materialize(duck, full=True)
    loaded_on_ray = materialize(on_ray, full=True)
    assert loaded_on_ray == loaded_locally
    at = datetime(2018, 1, 1, 6, tzinfo=UTC)
    entities = open_deal_entities(source[SALES_PIPELINE], source[ACCOUNTS], at)
    entities = entities.drop(columns=[OPPORTUNITY_ID, "deal_stage", TIMESTAMP]).astype(object)
    records = entities.where(entities.notna(), None).to_dict("records")
    rows = online_entity_rows([{str(k): v for k, v in r.items()} for r in records])
    service = duck.get_feature_service(SCORING_SERVICE)
    want = duck.get_online_features(features=service, entity_rows=rows, full_feature_names=True)
    got = on_ray.get_online_features(
        features=on_ray.get_feature_service(SCORING_SERVICE),
        entity_rows=rows,
        full_feature_names=True,
    )
    want_frame = want.to_df().assign(row=range(len(rows)))
    got_frame = got.to_df().assign(row=range(len(rows)))
    assert_same_frame(got_frame, want_frame, ["row"])
    assert want_frame["sales_agent_daily_stats__win_rate_all"].notna().any()


def test_cluster_yaml_differs_from_the_stack_only_in_its_ray_stores() -> None:
    stack = yaml.safe_load(
        (CLUSTER_YAML.parent.parent / "stack" / "feature_store.yaml").read_text()
    )
    cluster = yaml.safe_load(CLUSTER_YAML.read_text())
    assert {k: v for k, v in cluster.items() if k not in ("offline_store", "batch_engine")} == {
        k: v for k, v in stack.items() if k not in ("offline_store", "batch_engine")
    }
    assert cluster["offline_store"]["type"] == "feature_tables.ray_offline_store.CRMRayOfflineStore"
    assert cluster["batch_engine"]["type"] == "feature_tables.ray_engine.CRMRayComputeEngine"
