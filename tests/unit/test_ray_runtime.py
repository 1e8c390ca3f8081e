"""The cluster profile's settings and how Ray is started from them (no Ray is started here)."""

from __future__ import annotations

from feature_tables.store import repo_config
from infra.ray_runtime import init_kwargs, worker_env
from infra.settings import Profile
from tests.support.settings import make


def test_cluster_runs_on_the_stacks_services() -> None:
    cluster, stack = make(profile="cluster"), make(profile="stack")
    assert cluster.profile is Profile.CLUSTER and cluster.uses_s3
    for field in ("s3_endpoint_url", "pg_host", "pg_user", "tracking_uri", "prefect_api_url"):
        assert getattr(cluster, field) == getattr(stack, field), field
    assert cluster.feature_store_yaml.parent.name == "cluster"


def test_the_cluster_feature_store_uses_the_ray_store_and_engine() -> None:
    config = repo_config(make(profile="cluster"))
    assert type(config.offline_store).__name__ == "CRMRayOfflineStoreConfig"
    assert type(config.batch_engine).__name__ == "CRMRayComputeEngineConfig"
    assert config.online_store.type == "feature_tables.postgres_online.PostgreSQLOnlineStore"


def test_a_local_ray_is_bounded_and_never_joins_another() -> None:
    kwargs = init_kwargs(make(profile="cluster", ray_num_cpus=3, ray_object_store_mb=300))
    assert kwargs["address"] == "local"
    assert kwargs["num_cpus"] == 3
    assert kwargs["object_store_memory"] == 300 * 1024 * 1024
    assert kwargs["include_dashboard"] is False


def test_a_cluster_address_is_joined_as_it_is() -> None:
    kwargs = init_kwargs(make(profile="cluster", ray_address="ray://head:10001"))
    assert kwargs["address"] == "ray://head:10001"
    assert "num_cpus" not in kwargs and "object_store_memory" not in kwargs


def test_workers_get_the_lakes_s3_endpoint_and_keys() -> None:
    env = init_kwargs(make(profile="cluster"))["runtime_env"]["env_vars"]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["AWS_ACCESS_KEY_ID"] == "crm" and env["AWS_SECRET_ACCESS_KEY"]
    assert not any(name.startswith(("CRM_", "MLFLOW_")) for name in env)
    assert worker_env(make(profile="local")) == {}
