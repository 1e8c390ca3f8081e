"""Prefect flow `score`: every open deal of a snapshot scored by the champion into the lake.

Reads the committed feature build from the offline store (serving/batch.py) and publishes
`predictions/snapshot=D/` under its manifest; the explorer's Pipeline page reads it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.runtime import quiet_user_errors
from infra.settings import get_settings
from serving.batch import score_snapshot


@task(cache_policy=NO_CACHE)
def score_and_publish(snapshot: str | None) -> dict[str, Any]:
    """Score the open deals and commit them (the lake retries its own calls)."""
    return score_snapshot(get_settings(), snapshot)


@flow(name="score")
def score(snapshot: str | None = None) -> dict[str, Any]:
    """Batch scores of `snapshot` (the committed feature build's by default); the summary."""
    quiet_user_errors()
    summary = score_and_publish(snapshot)
    get_run_logger().info(
        "Scored %s open deals of %s with %s (features %.1f s, model %.1f s)",
        summary["rows"],
        summary["snapshot"],
        summary["model"],
        summary["seconds"]["features"],
        summary["seconds"]["score"],
    )
    return summary


def score_if_champion(snapshot: str | None) -> dict[str, Any]:
    """The `score` flow, or why it did not run: before the first champion a chain still
    completes (its features are online); it says that the open deals are not scored yet."""
    from training.registry import CHAMPION, alias_version

    settings = get_settings()
    if alias_version(settings, CHAMPION) is None:
        reason = f"no {settings.model_name}@{CHAMPION} yet: open deals not scored (`crm train`)"
        get_run_logger().warning("%s", reason)
        return {"skipped": reason}
    return score.with_options(timeout_seconds=1800)(snapshot=snapshot)
