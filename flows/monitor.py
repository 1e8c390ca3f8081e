"""Prefect flow `monitor`: a snapshot judged against the champion, and the retraining event.

It runs the plain functions of `monitoring/` (drift of features, scores and quality score,
realised performance), writes `reports/monitoring/snapshot=D/` and logs the figures to MLflow on
the champion's run. When a threshold is breached it emits the Prefect event `DRIFT_EVENT` about
the model (resource `crm.model.<name>`): the `train-weekly` deployment's trigger in prefect.yaml
turns it into a training run, whose gate still decides whether the new model is promoted. The
alert webhook (`CRM_ALERT_WEBHOOK_URL`) gets one line saying what drifted.

In `crm-daily` the event is emitted after the chain has released the lake's run lease
(`emit_drift_event`), so the training it triggers does not find the lake held.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows.runs import post_alert
from infra.lake import Lake
from infra.runtime import quiet_user_errors
from infra.settings import Settings, get_settings
from monitoring.run import monitor_snapshot, publish_report, summary
from monitoring.tracking import log_to_champion

# What prefect.yaml's trigger on `train-weekly` waits for (a test holds the two equal).
DRIFT_EVENT = "crm.monitoring.drift-detected"
MODEL_RESOURCE_PREFIX = "crm.model."


def model_resource(settings: Settings) -> str:
    return f"{MODEL_RESOURCE_PREFIX}{settings.model_name}"


@task(cache_policy=NO_CACHE)
def monitor_and_publish(snapshot: str | None) -> dict[str, Any]:
    """Judge the snapshot, write the report, log it to MLflow; the summary."""
    settings = get_settings()
    monitored = monitor_snapshot(settings, snapshot)
    report_key = publish_report(Lake.from_settings(settings), monitored)
    run_id = log_to_champion(settings, monitored.report)
    return summary(monitored) | {"report": report_key, "mlflow_run_id": run_id}


def drift_message(result: dict[str, Any]) -> str:
    """One line a person can act on: which snapshot, which model, what drifted."""
    what = "; ".join(result["breaches"])
    return (
        f"crm-feature-platform: drift on snapshot {result['snapshot']} for {result['model']}: "
        f"{what}. Retraining was requested (train-weekly); the gate decides on promotion."
    )


def emit_drift_event(result: dict[str, Any]) -> str | None:
    """Emit `DRIFT_EVENT` and post the alert, if the result breached a threshold; the event's
    id (None when nothing breached, or when no Prefect API received it)."""
    if not result.get("alarm"):
        return None
    settings = get_settings()
    event = emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": model_resource(settings),
            "prefect.resource.name": settings.model_name,
        },
        payload={
            "snapshot": result["snapshot"],
            "model": result["model"],
            "breaches": result["breaches"],
            "drifted_features": result["drifted_features"],
            "report": result.get("report"),
        },
    )
    text = drift_message(result)
    get_run_logger().warning("%s", text)
    post_alert(
        settings,
        {
            "text": text,
            "event": DRIFT_EVENT,
            "snapshot": result["snapshot"],
            "model": result["model"],
            "breaches": result["breaches"],
        },
    )
    return str(event.id) if event is not None else None


@flow(name="monitor")
def monitor(snapshot: str | None = None, emit: bool = True) -> dict[str, Any]:
    """Monitor `snapshot` (the current feature build's by default); with `emit`, a breach
    raises the retraining event at once (the daily chain emits it after its lease instead)."""
    quiet_user_errors()
    result = monitor_and_publish(snapshot)
    logger = get_run_logger()
    logger.info(
        "Monitored %s (%s rows) against %s: %s",
        result["snapshot"],
        result["rows"],
        result["model"],
        "; ".join(result["breaches"]) or "no threshold breached",
    )
    if emit:
        result["event_id"] = emit_drift_event(result)
    return result


def monitor_if_champion(snapshot: str | None) -> dict[str, Any]:
    """The `monitor` flow without its event, or why it did not run: no champion yet, or a
    champion trained before references were saved (the chain still completes; `crm monitor`
    says the same as an error)."""
    from monitoring.reference import has_reference
    from training.registry import CHAMPION, alias_version

    settings = get_settings()
    version = alias_version(settings, CHAMPION)
    reason = None
    if version is None:
        reason = f"no {settings.model_name}@{CHAMPION} yet: nothing to monitor (`crm train`)"
    elif not has_reference(settings, version):
        reason = (
            f"{settings.model_name} v{version} has no training reference: nothing to compare "
            "with until a model trained with one is champion (`crm train`)"
        )
    if reason:
        get_run_logger().warning("%s", reason)
        return {"skipped": reason}
    return monitor.with_options(timeout_seconds=1800)(snapshot=snapshot, emit=False)
