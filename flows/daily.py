"""Prefect flows `crm-daily`, `train-weekly` and `backfill`: the platform left running.

`crm-daily` is one chain per day: land (from `CRM_DAILY_SOURCE`) → validate, the gate → features
→ materialise → batch-score every open deal → monitor (drift against the champion's training
reference, realised performance; flows/monitor.py). A breach emits the retraining event once the
chain has released the lake, so the `train-weekly` run it triggers can take it. Each step is
the stage's own flow, run as a subflow; a failed gate raises, so nothing after it runs and the
run ends Failed with the gate's reason (reported to `CRM_ALERT_WEBHOOK_URL` when set).
`train-weekly` trains on the latest validated snapshot and re-scores it with whatever is
champion afterwards. Both hold the lake's pipeline-run lease for their whole run
(flows/runs.py), as `crm-pipeline` does; so does `backfill`, which recomputes a range of
snapshots (`crm backfill --from D1 --to D2`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, get_run_logger

from flows.features import features
from flows.land import land
from flows.materialize import materialize_flow
from flows.monitor import emit_drift_event, monitor_if_champion
from flows.runs import Steps, alert_on_failure, one_run_at_a_time
from flows.score import score_if_champion
from flows.train import train
from flows.validate import validate
from infra.errors import CRMError
from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import get_settings
from ingestion.landing import check_snapshot
from validation.published import validated_snapshots


@flow(name="crm-daily", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def daily(source: str | None = None, snapshot: str | None = None) -> dict[str, Any]:
    """Land `source` (default `CRM_DAILY_SOURCE`) as `snapshot` (default today), then validate,
    build the features, materialise them and score the open deals; the run's summary."""
    quiet_user_errors()
    settings = get_settings()
    steps = Steps(get_run_logger())
    with one_run_at_a_time(settings):
        landed = steps.run(
            "land",
            lambda: land.with_options(timeout_seconds=900)(
                source=source or settings.daily_source, snapshot=snapshot
            ),
        )
        snapshot = landed["snapshot"]
        validated = steps.run(
            "validate", lambda: validate.with_options(timeout_seconds=900)(snapshot=snapshot)
        )
        feature_rows = steps.run(
            "features", lambda: features.with_options(timeout_seconds=1800)(snapshot=snapshot)
        )
        materialized = steps.run(
            "materialize", lambda: materialize_flow.with_options(timeout_seconds=1800)()
        )
        scored = steps.run("score", lambda: score_if_champion(snapshot))
        monitored = steps.run("monitor", lambda: monitor_if_champion(snapshot))
    monitored["event_id"] = emit_drift_event(monitored)
    return {
        "snapshot": snapshot,
        "source": landed["source"],
        "rows": landed["rows"],
        "quality_score": validated["score"],
        "feature_rows": feature_rows,
        "materialized": materialized,
        "scored": scored,
        "monitored": monitored,
        "seconds": steps.timings(),
    }


@flow(name="train-weekly", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def weekly_train(snapshot: str | None = None) -> dict[str, Any]:
    """Train on `snapshot` (the latest validated one by default), then score its open deals
    with the champion (a new one if the gate promoted it)."""
    quiet_user_errors()
    steps = Steps(get_run_logger())
    with one_run_at_a_time():
        trained = steps.run("train", lambda: train.with_options(timeout_seconds=3600)(snapshot))
        scored = steps.run("score", lambda: score_if_champion(snapshot))
    return {"train": trained, "scored": scored, "seconds": steps.timings()}


class BackfillError(CRMError):
    """A backfill was asked for a range it cannot run; the message says what to do."""


@flow(name="backfill", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backfill(start: str, end: str) -> dict[str, Any]:
    """Recompute every validated snapshot from `start` to `end` (YYYY-MM-DD, both included):
    its feature build, then its batch scores; then materialise the current build.

    Idempotent: a snapshot's build and scores are replaced by equal ones (each snapshot's
    build is its own, so the older ones never move Feast's sources off the newest).
    """
    quiet_user_errors()
    start, end = check_snapshot(start), check_snapshot(end)
    if start > end:
        raise BackfillError(f"--from {start} is after --to {end}: swap them.")
    settings = get_settings()
    snapshots = [s for s in validated_snapshots(Lake.from_settings(settings)) if start <= s <= end]
    if not snapshots:
        raise BackfillError(
            f"No validated snapshot from {start} to {end}: land and validate them first "
            "(`crm land --snapshot D`, `crm validate --snapshot D`)."
        )
    steps = Steps(get_run_logger())
    done: dict[str, Any] = {}
    with one_run_at_a_time(settings):
        for snapshot in snapshots:
            build = features.with_options(timeout_seconds=1800)
            rows = steps.run(f"features {snapshot}", partial(build, snapshot=snapshot))
            scored = steps.run(f"score {snapshot}", partial(score_if_champion, snapshot))
            done[snapshot] = {"feature_rows": rows, "scored": scored}
        materialized = steps.run(
            "materialize", lambda: materialize_flow.with_options(timeout_seconds=1800)()
        )
    return {"snapshots": done, "materialized": materialized, "seconds": steps.timings()}
