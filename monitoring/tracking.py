"""The monitoring figures in MLflow, on the champion's own training run.

Each monitored snapshot adds one point (step = the snapshot's date as YYYYMMDD) to metrics of
the run that produced the champion, so the model's page in MLflow shows its drift and realised
performance over time next to its test metrics, and the whole report is kept as an artifact.
"""

from __future__ import annotations

import math
import time
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from infra.settings import Settings
from training import tracking
from training.registry import REGISTRY_ERRORS, registry_error

PREFIX = "monitor_"


def metrics_of(report: dict[str, Any]) -> dict[str, float]:
    """The report's figures as MLflow metrics (missing ones left out)."""
    out: dict[str, float] = {
        f"{PREFIX}rows": report["rows"],
        f"{PREFIX}alarm": float(report["alarm"]),
        f"{PREFIX}drifted_features": len(report["drifted_features"]),
    }
    if report["features"]:
        out[f"{PREFIX}psi_max_judged"] = max(
            (f["psi"] for f in report["features"] if f["judged"]), default=0.0
        )
        out |= {f"{PREFIX}psi.{f['name']}": f["psi"] for f in report["features"]}
    if report["prediction"]:
        out[f"{PREFIX}prediction_psi"] = report["prediction"]["psi"]
    if report["quality"]["score"] is not None:
        out[f"{PREFIX}quality_score"] = report["quality"]["score"]
    version = report["model"]["version"]
    for row in report["performance"]["by_version"]:
        if row["model_version"] == version:
            for name in ("pairs", "auc", "brier", "base_rate_brier", "brier_skill", "ece"):
                if row[name] is not None:
                    out[f"realised_{row['source']}_{name}"] = row[name]
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


def log_to_champion(settings: Settings, report: dict[str, Any]) -> str:
    """Log the report's metrics and the report itself to the champion's run; the run id."""
    run_id = str(report["model"]["run_id"])
    step = int(report["snapshot"].replace("-", ""))
    now = int(time.time() * 1000)
    tracking.configure(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    metrics = [Metric(k, v, now, step) for k, v in metrics_of(report).items()]
    try:
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        client.log_dict(run_id, report, f"monitoring/snapshot={report['snapshot']}/report.json")
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"log monitoring to run {run_id}", exc) from exc
    return run_id
