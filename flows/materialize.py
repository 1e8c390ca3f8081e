"""Prefect flow `materialize`: register the feature definitions and load the online store."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from feature_tables.store import apply, feature_store, materialize
from flows.retries import TRANSIENT_RETRIES, TRANSIENT_RETRY_DELAY_S, transient_only
from infra.runtime import quiet_user_errors
from infra.settings import get_settings

# The registry and the online store are databases: a dropped connection is worth a retry.
on_outage = task(
    retries=TRANSIENT_RETRIES,
    retry_delay_seconds=TRANSIENT_RETRY_DELAY_S,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)


@on_outage
def apply_definitions() -> list[str]:
    """`feast apply` of feature_repo/ against the active profile's registry."""
    settings = get_settings()
    return apply(feature_store(settings), settings)


@on_outage
def materialize_online(end: datetime | None, full: bool = False) -> dict[str, int]:
    """Incremental materialisation (full on a view's first run, or with `full`); entities
    loaded per view."""
    return materialize(feature_store(get_settings()), end, full=full)


@flow(name="materialize")
def materialize_flow(end: datetime | None = None, full: bool = False) -> dict[str, int]:
    """Apply the definitions, then load the online store up to `end` (default: the newest
    row). Incremental by data time; `full` reloads everything (facts that arrived late, dated
    before what was already loaded)."""
    quiet_user_errors()
    apply_definitions()
    rows = materialize_online(end, full)
    get_run_logger().info("Materialised entities per view: %s", rows)
    return rows
