"""Prefect flow `features`: a validated snapshot becomes the point-in-time feature tables."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from feature_tables.build import build_feature_tables
from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import get_settings


@task(cache_policy=NO_CACHE)
def compute_and_write(snapshot: str | None) -> dict[str, int]:
    """Build every feature view from the snapshot and write it to the lake (which retries)."""
    return build_feature_tables(Lake.from_settings(get_settings()), snapshot)


@flow(name="features")
def features(snapshot: str | None = None) -> dict[str, int]:
    """Feature tables of `snapshot` (the latest validated one by default); rows per view."""
    quiet_user_errors()
    return compute_and_write(snapshot)
