"""Prefect flow `features`: a validated snapshot becomes the point-in-time feature tables.

The views are published as one build (the features manifest), then the Feast definitions are
applied again: their sources name the build's physical objects, and the registry must follow
before a later build removes the objects it points at.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from feature_tables.build import build_feature_tables
from feature_tables.store import apply, feature_store
from flows.retries import TRANSIENT_RETRIES, TRANSIENT_RETRY_DELAY_S, transient_only
from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import get_settings


@task(cache_policy=NO_CACHE)
def compute_and_write(snapshot: str | None) -> dict[str, int]:
    """Build every feature view from the snapshot and publish them (the lake retries)."""
    return build_feature_tables(Lake.from_settings(get_settings()), snapshot)


# The registry is a database: a dropped connection is worth a retry.
@task(
    retries=TRANSIENT_RETRIES,
    retry_delay_seconds=TRANSIENT_RETRY_DELAY_S,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def register_sources() -> list[str]:
    """`feast apply`: point the registry's sources at the build just published."""
    settings = get_settings()
    return apply(feature_store(settings), settings)


@flow(name="features")
def features(snapshot: str | None = None) -> dict[str, int]:
    """Feature tables of `snapshot` (the latest validated one by default); rows per view."""
    quiet_user_errors()
    rows = compute_and_write(snapshot)
    applied = register_sources()
    get_run_logger().info("Feature tables published; Feast definitions applied: %s", applied)
    return rows
