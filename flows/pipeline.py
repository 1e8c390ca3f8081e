"""Prefect flow `crm-pipeline`: land → validate (gate) → features → materialise → train/promote.

Each step is the stage's own flow run as a subflow with a timeout (retries live inside the steps:
the lake retries its own calls and tasks retry only transient errors, see flows/retries.py); the
validation gate stops the run before anything downstream touches a bad snapshot. The run ends
with a summary published as a Prefect markdown artifact.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.features import features
from flows.land import land
from flows.materialize import materialize_flow
from flows.train import train
from flows.validate import validate
from infra.runtime import quiet_user_errors


@flow(name="crm-pipeline")
def pipeline(
    source: str = "synthetic",
    snapshot: str | None = None,
    opportunities: int | None = None,
    seed: int = 42,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The whole path for one snapshot; returns (and publishes) the run summary.

    `threshold`: the minimum quality score (default: the `CRM_QUALITY_THRESHOLD` setting).
    """
    quiet_user_errors()
    logger = get_run_logger()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, call: Any) -> Any:
        t0 = time.perf_counter()
        result = call()
        timings[name] = round(time.perf_counter() - t0, 1)
        logger.info("%s done in %.1f s", name, timings[name])
        return result

    landed = step(
        "land",
        lambda: land.with_options(timeout_seconds=900)(
            source=source, snapshot=snapshot, opportunities=opportunities, seed=seed
        ),
    )
    snapshot = landed["snapshot"]
    validated = step(
        "validate",
        lambda: validate.with_options(timeout_seconds=900)(snapshot=snapshot, threshold=threshold),
    )
    feature_rows = step(
        "features",
        lambda: features.with_options(timeout_seconds=1800)(snapshot=snapshot),
    )
    materialized = step(
        "materialize", lambda: materialize_flow.with_options(timeout_seconds=1800)()
    )
    trained = step("train", lambda: train.with_options(timeout_seconds=3600)(snapshot=snapshot))
    summary = {
        "snapshot": snapshot,
        "source": landed["source"],
        "rows": landed["rows"],
        "quality_score": validated["score"],
        "quality_passed": validated["passed"],
        "feature_rows": feature_rows,
        "materialized": materialized,
        "metrics": {
            model: {k: trained["metrics"][model].get(k) for k in ("auc", "brier", "log_loss")}
            for model in trained["metrics"]
        },
        "model": trained.get("decision", {}),
        "seconds": {**timings, "total": round(time.perf_counter() - started, 1)},
    }
    create_markdown_artifact(
        key="crm-pipeline-summary",
        markdown=summary_markdown(summary),
        description=f"crm-pipeline run for snapshot {snapshot}",
    )
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as a small Markdown report (the Prefect artifact's body)."""
    lines = [
        f"# crm-pipeline — snapshot {summary['snapshot']}",
        "",
        f"Source `{summary['source']}`; quality score **{summary['quality_score']:.3f}**"
        f" ({'passed' if summary['quality_passed'] else 'failed'}).",
        "",
        "| table | rows |",
        "|---|---:|",
        *(f"| {table} | {rows:,} |" for table, rows in summary["rows"].items()),
        "",
        "| model | ROC AUC | Brier | log loss |",
        "|---|---:|---:|---:|",
        *(
            f"| {model} | {_fmt(m.get('auc'))} | {_fmt(m.get('brier'))} |"
            f" {_fmt(m.get('log_loss'))} |"
            for model, m in summary["metrics"].items()
        ),
        "",
        f"Model: `{summary['model']}`",
        "",
        "Seconds per step: "
        + ", ".join(f"{name} {secs}" for name, secs in summary["seconds"].items()),
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "–"
