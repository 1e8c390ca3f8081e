"""Prefect flow `materialize`: register the feature definitions and load the online store."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from feature_tables.store import apply, feature_store, materialize
from infra.settings import get_settings


@task(retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def apply_definitions() -> list[str]:
    """`feast apply` of feature_repo/ against the active profile's registry."""
    settings = get_settings()
    return apply(feature_store(settings), settings)


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def materialize_online(end: datetime | None) -> dict[str, int]:
    """Incremental materialisation (full on a view's first run); entities loaded per view."""
    return materialize(feature_store(get_settings()), end)


@flow(name="materialize")
def materialize_flow(end: datetime | None = None) -> dict[str, int]:
    """Apply the definitions, then load the online store up to `end` (default now)."""
    apply_definitions()
    rows = materialize_online(end)
    get_run_logger().info("Materialised entities per view: %s", rows)
    return rows
