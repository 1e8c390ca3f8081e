"""The monitoring step as plain functions: judge a snapshot against the champion, write the report.

`monitor_snapshot` gathers today's open deals and their features (the rows batch scoring
scores), the champion's training reference, the batch scores made earlier and the served
prediction log (`serving.prediction_log`); it returns the report (drift of every feature, of the
scores and of the quality score, the served requests' drift and their training/serving skew
(`serving.skew`), realised performance of batch and served scores, and the breaches that make an
alarm) and Evidently's HTML page. `publish_report` writes both
under `reports/monitoring/snapshot=D/`. The Prefect flow `monitor` (flows/monitor.py) runs them,
logs the figures to MLflow and raises the retraining event; these are testable without Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import pandas as pd

from infra.lake import Lake
from infra.layout import monitoring_report_keys
from infra.settings import Settings
from monitoring.current import open_deals
from monitoring.drift import Drift, feature_drift, prediction_drift, quality_drift
from monitoring.errors import NoReferenceError
from monitoring.html import drift_html
from monitoring.performance import PAIR_COLUMNS, SERVED, realised_performance
from monitoring.reference import load_reference
from serving.prediction_log import feature_columns, read_prediction_log
from serving.scorer import load_champion
from serving.skew import skew_report


@dataclass(frozen=True)
class Monitored:
    """A snapshot's monitoring report (JSON-able) and its HTML page."""

    report: dict[str, Any]
    html: str

    @property
    def alarm(self) -> bool:
        return bool(self.report["alarm"])


def breaches(
    features: list[Drift],
    prediction: Drift | None,
    quality: dict[str, Any],
    served: list[Drift] | None,
) -> list[str]:
    """One line per breached threshold, saying what drifted and by how much."""
    lines = []
    for source, drifts in (("features", features), ("served features", served or [])):
        for d in drifts:
            if d.drifted:
                lines.append(
                    f"{source}: {d.name} drifted (PSI {d.psi:.3f}, {d.test} p={d.p_value:.2g})"
                )
    if prediction is not None and prediction.drifted:
        lines.append(
            f"scores: win_probability drifted (PSI {prediction.psi:.3f}, "
            f"mean {prediction.reference['mean']} -> {prediction.current['mean']})"
        )
    if quality["breached"]:
        lines.append(
            f"data quality: score {quality['score']} is {quality['drop']} below the training "
            f"snapshot {quality['reference_snapshot']}'s {quality['reference_score']}"
        )
    return lines


def served_window(log: pd.DataFrame, snapshot: str, days: int) -> pd.DataFrame:
    """The log's rows served in the `days` days that end on the snapshot's day."""
    end = date.fromisoformat(snapshot)
    served = pd.to_datetime(log["served_at"], utc=True).dt.date
    return log[(served > end - timedelta(days=days)) & (served <= end)].reset_index(drop=True)


def served_features(log: pd.DataFrame, version: str) -> pd.DataFrame:
    """The feature values the given model version was served with (full feature names)."""
    rows = log[log["model_version"].astype(str) == version]
    return rows[feature_columns(rows)].reset_index(drop=True)


def served_pairs(log: pd.DataFrame) -> pd.DataFrame:
    """The log's scores as forecasts to judge (`monitoring.performance.PAIR_COLUMNS`)."""
    pairs = pd.DataFrame(
        {
            "opportunity_id": log["opportunity_id"].astype(str),
            "source": SERVED,
            "model_version": log["model_version"].astype(str),
            "predicted_at": pd.to_datetime(log["served_at"], utc=True),
            "probability": log["probability"].astype("float64"),
        }
    )
    return pairs[list(PAIR_COLUMNS)]


def monitor_snapshot(
    settings: Settings, snapshot: str | None = None, *, served_log: pd.DataFrame | None = None
) -> Monitored:
    """Judge `snapshot` (default: the current feature build's) against the champion.

    `served_log`: the prediction log up to the snapshot (default: read from the lake).
    """
    lake = Lake.from_settings(settings)
    loaded = load_champion(settings)  # RegistryError with what to do when there is none
    reference = load_reference(settings, loaded.version)
    deals = open_deals(settings, snapshot)
    snapshot = deals.snapshot
    judged = len(deals.frame) >= settings.monitor_min_rows
    scores = pd.Series(
        loaded.model.predict_proba(deals.frame) if len(deals.frame) else [], dtype="float64"
    )
    features = feature_drift(reference, deals.frame, settings) if judged else []
    prediction = prediction_drift(reference, scores.to_numpy(), settings) if judged else None
    quality = quality_drift(lake, snapshot, reference, settings)
    if served_log is None:
        served_log = read_prediction_log(lake, end=date.fromisoformat(snapshot))
    recent = served_window(served_log, snapshot, settings.monitor_log_days)
    served_frame = served_features(recent, loaded.version)
    served = (
        feature_drift(reference, served_frame, settings)
        if len(served_frame) >= settings.monitor_min_rows
        else None
    )
    skew = (
        skew_report(settings, recent, settings.monitor_skew_sample).to_dict()
        if len(recent)
        else None
    )

    @cache
    def base_rate_of(version: str) -> float | None:
        if version == loaded.version:
            return reference.base_rate
        try:
            return load_reference(settings, version).base_rate
        except NoReferenceError:
            return None

    performance = realised_performance(lake, snapshot, base_rate_of, served_pairs(served_log))
    found = breaches(features, prediction, quality, served)
    report = {
        "snapshot": snapshot,
        "monitored_at": datetime.now(UTC).isoformat(),
        "model": {
            "name": loaded.name,
            "version": loaded.version,
            "run_id": reference.run_id,
            "reference_snapshot": reference.snapshot,
            "reference_population": reference.profile.get("population"),
            "reference_rows": reference.profile["rows"],
            "reference_sample_rows": len(reference.sample),
        },
        "rows": len(deals.frame),
        "scored_at": deals.at.isoformat(),
        "judged": judged,
        "thresholds": {
            "psi": settings.monitor_psi_threshold,
            "p_value": settings.monitor_p_value,
            "quality_drop": settings.monitor_quality_drop,
            "min_rows": settings.monitor_min_rows,
        },
        "drifted_features": [d.name for d in features if d.drifted],
        "features": [d.to_dict() for d in features],
        "prediction": prediction.to_dict() if prediction else None,
        "quality": quality,
        "served": {
            "rows": len(recent),
            "rows_of_champion": len(served_frame),
            "days": settings.monitor_log_days,
            "features": [d.to_dict() for d in served] if served is not None else None,
            "drifted_features": [d.name for d in served or [] if d.drifted],
        },
        "skew": skew,
        "performance": performance,
        "breaches": found,
        "alarm": bool(found),
    }
    html = drift_html(reference, deals.frame, scores, settings.monitor_p_value) if judged else ""
    return Monitored(report, html)


def publish_report(lake: Lake, monitored: Monitored) -> str:
    """Write report.html, then report.json (each atomically; the JSON last: readers go by it).
    The JSON's key."""
    json_key, html_key = monitoring_report_keys(monitored.report["snapshot"])
    if monitored.html:
        lake.put_bytes(html_key, monitored.html.encode("utf-8"))
    lake.write_json(json_key, monitored.report)
    return json_key


def summary(monitored: Monitored) -> dict[str, Any]:
    """What `crm monitor` prints: the verdict and the headline figures."""
    report = monitored.report
    champion = [
        row
        for row in report["performance"]["by_version"]
        if row["model_version"] == report["model"]["version"]
    ]
    return {
        "snapshot": report["snapshot"],
        "model": f"{report['model']['name']} v{report['model']['version']}",
        "rows": report["rows"],
        "alarm": report["alarm"],
        "breaches": report["breaches"],
        "drifted_features": report["drifted_features"],
        "psi_max_judged": max((f["psi"] for f in report["features"] if f["judged"]), default=None),
        "prediction_psi": report["prediction"]["psi"] if report["prediction"] else None,
        "quality_score": report["quality"]["score"],
        "served_rows": report["served"]["rows"],
        "skewed_features": (report["skew"] or {}).get("skewed", []),
        "realised": champion,
    }
