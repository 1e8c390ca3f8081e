"""Prefect flow `validate`: check a landed snapshot and publish it only if it passes the gate."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import get_settings
from ingestion.landing import list_snapshots
from validation.errors import SnapshotNotLandedError
from validation.gate import ensure_valid
from validation.result import ValidationResult
from validation.run import validate_snapshot


def latest_landed_snapshot(lake: Lake) -> str:
    """The newest snapshot with a committed raw manifest."""
    snapshots = list_snapshots(lake)
    if not snapshots:
        raise SnapshotNotLandedError(f"No landed snapshot in {lake.where}: run `crm land` first.")
    return snapshots[-1]


@task(cache_policy=NO_CACHE)  # reads and writes the lake, which retries its own calls
def run_validation(snapshot: str | None, threshold: float | None) -> ValidationResult:
    """Validate the snapshot; writes quarantine and report, publishes validated/ if it passes."""
    settings = get_settings()
    lake = Lake.from_settings(settings)
    return validate_snapshot(
        lake,
        snapshot or latest_landed_snapshot(lake),
        threshold=settings.quality_threshold if threshold is None else threshold,
    )


@flow(name="validate")
def validate(snapshot: str | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Validate `snapshot` (the latest landed one by default) and stop the run if it fails.

    `threshold` is the minimum quality score; None means the settings' `quality_threshold`
    (`CRM_QUALITY_THRESHOLD`, or `.env`), read when the flow runs.
    """
    quiet_user_errors()
    result = run_validation(snapshot, threshold)
    ensure_valid(result)
    return result.summary()
