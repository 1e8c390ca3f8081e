"""Prefect flow `land`: read a source and publish it as one raw snapshot of the lake."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.retries import TRANSIENT_RETRIES, TRANSIENT_RETRY_DELAY_S, transient_only
from infra.clock import today
from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import get_settings
from ingestion import landing
from ingestion.source_data import SourceData
from ingestion.sources import check_source, load_source


# NO_CACHE: the inputs/outputs are whole tables; hashing them for a cache key would cost more
# than reading the source again. Retried only on an outage (a download that was cut, say).
@task(
    retries=TRANSIENT_RETRIES,
    retry_delay_seconds=TRANSIENT_RETRY_DELAY_S,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def read_source(
    source: str,
    opportunities: int | None,
    seed: int,
    signal: float | None = None,
    as_of: date | None = None,
) -> SourceData:
    """Read the four tables (synthetic, Kaggle or a CSV folder); synthetic as of `as_of`."""
    return load_source(source, opportunities=opportunities, seed=seed, signal=signal, as_of=as_of)


@task(cache_policy=NO_CACHE)
def publish_snapshot(data: SourceData, snapshot: str) -> dict[str, Any]:
    """Publish the tables under one manifest (the lake retries its own calls)."""
    lake = Lake.from_settings(get_settings())
    result = landing.land(lake, data, snapshot, code_version=landing.code_version())
    return result.summary()


@flow(name="land")
def land(
    source: str | None = None,
    snapshot: str | None = None,
    opportunities: int | None = None,
    seed: int = 42,
    signal: float | None = None,
) -> dict[str, Any]:
    """Land `source` (default `CRM_DAILY_SOURCE`) as raw snapshot `snapshot` (today, UTC).

    Synthetic data is the generated history as of the snapshot's date (snapshots of one history
    differ as daily ones do). `signal` (synthetic only): strength of the planted signal in
    [0, 1], None for the default 1;
    a non-default signal is part of the source recorded in the manifest (`synthetic:signal=0.3`).
    """
    quiet_user_errors()
    source = source or get_settings().daily_source
    snapshot = landing.check_snapshot(snapshot or today())
    check_source(source, opportunities, signal)
    data = read_source(source, opportunities, seed, signal, date.fromisoformat(snapshot))
    return publish_snapshot(data, snapshot)
