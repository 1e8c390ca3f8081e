"""Monitoring scenario (`crm bench monitoring`): the report's figures for four weekly snapshots.

In a private embedded profile (its own folder; nothing of the user's is touched), one synthetic
history is landed as four snapshots through the land path (land -> validate -> features ->
`feast apply`): a champion is trained on the first; the history drifts (the generator's knob,
every kind) from the day after the third, so the next two are undrifted and the last, two weeks
into the drift, is not. Each snapshot's open deals are batch-scored and the
snapshot is monitored (`monitoring.run.monitor_snapshot`, the `monitor` flow's function): per
snapshot the verdict, the judged features' PSI and p-values, the largest PSI of a reported-only
feature, the scores' and the quality score's drift, realised performance per model version and
week, and the seconds monitoring took. tests/pipeline/test_monitoring.py runs the same scenario.
Writes bench/results/monitoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from infra.settings import Settings
from ingestion.drift import Drift
from ingestion.source_data import SourceData

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "monitoring.json"
# Weekly: the champion is trained on the first, the next two are undrifted, the last drifted.
SNAPSHOTS = ("2017-12-03", "2017-12-10", "2017-12-17", "2017-12-31")
# The generator's drift knob (ingestion/drift.py): every kind, for deals engaged from the day
# after the third snapshot; the snapshots before it are those of the undrifted history.
DRIFT = Drift(date(2017, 12, 18))
OPPORTUNITIES = 6000  # enough history by early December for a champion (skill > base rate)
SEED = 8


def land_snapshot(settings: Settings, source: SourceData, snapshot: str) -> None:
    """Land, validate (the gate must pass), build the snapshot's features, point Feast at them."""
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store
    from infra.lake import Lake
    from ingestion.landing import land
    from validation.run import validate_snapshot

    lake = Lake.from_settings(settings)
    land(lake, source, snapshot, code_version="monitoring-scenario")
    result = validate_snapshot(lake, snapshot, threshold=settings.quality_threshold)
    if not result.passed:
        raise RuntimeError(f"{snapshot} failed the quality gate ({result.score.value:.3f})")
    build_feature_tables(lake, snapshot)
    apply(feature_store(settings), settings)


def figures(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What the scenario records of one snapshot's report."""
    judged = [f for f in report["features"] if f["judged"]]
    reported = [f["psi"] for f in report["features"] if not f["judged"]]
    prediction = report["prediction"]
    return {
        "snapshot": report["snapshot"],
        "rows": report["rows"],
        "monitor_seconds": round(seconds, 1),
        "alarm": report["alarm"],
        "breaches": report["breaches"],
        "judged": {f["name"]: {"psi": f["psi"], "p_value": f["p_value"]} for f in judged},
        "reported_only_psi_max": max(reported, default=None),
        "scores": {
            "psi": prediction["psi"],
            "p_value": prediction["p_value"],
            "reference_mean": prediction["reference"]["mean"],
            "mean": prediction["current"]["mean"],
        },
        "quality": {k: report["quality"][k] for k in ("score", "reference_score", "drop")},
        "realised": report["performance"]["by_version"],
        "realised_by_week": report["performance"]["by_week"],
    }


def run(home: Path) -> dict[str, Any]:
    from infra.lake import Lake
    from infra.settings import get_settings
    from ingestion.synthetic import as_of, generate
    from monitoring.run import monitor_snapshot, publish_report
    from serving.batch import score_snapshot
    from training.config import TrainingConfig
    from training.run import train

    os.environ.update({"CRM_PROFILE": "local", "CRM_HOME": str(home)})
    settings = get_settings()
    history = generate(OPPORTUNITIES, seed=SEED, drift=DRIFT)
    snapshots, champion = [], None
    for snapshot in SNAPSHOTS:
        source = as_of(history, date.fromisoformat(snapshot))
        land_snapshot(settings, source, snapshot)
        if champion is None:
            trained = train(settings, TrainingConfig(search_size=2, seed=7))
            champion = trained.decision.to_dict() if trained.decision else {}
        score_snapshot(settings, snapshot)
        started = time.perf_counter()
        monitored = monitor_snapshot(settings, snapshot)
        seconds = time.perf_counter() - started
        publish_report(Lake.from_settings(settings), monitored)
        snapshots.append(figures(monitored.report, seconds))
        print(json.dumps(snapshots[-1]["breaches"] or "no alarm"), snapshot, flush=True)
    return {"champion": champion, "snapshots": snapshots}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crm-bench-monitoring-") as folder:
        scenario = run(Path(folder) / ".crm")
    result = {
        "benchmark": "monitoring: four weekly snapshots, the last drifted",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "opportunities": OPPORTUNITIES,
        "seed": SEED,
        **scenario,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
