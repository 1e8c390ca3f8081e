"""What the explorer's Monitoring page reads: the monitor's reports, as frames to chart.

`crm monitor` (flows/monitor.py) writes one `report.json` per snapshot under
`reports/monitoring/snapshot=D/`; this module only reads them, so the page works on any
profile's lake without Evidently, MLflow or the monitoring package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from infra.lake import Lake
from infra.layout import MONITORING_REPORTS, monitoring_report_keys
from serving.explorer.errors import NoData

NO_REPORT = (
    "No monitoring report yet: once a champion has scored a snapshot (`crm score --all`), run "
    "`crm monitor` (the crm-daily deployment runs it after scoring every day)."
)


def report_snapshots(lake: Lake) -> list[str]:
    """Snapshots with a monitoring report, oldest first."""
    snapshots = []
    for snapshot in lake.list_partitions(MONITORING_REPORTS, "snapshot"):
        if lake.exists(monitoring_report_keys(snapshot)[0]):
            snapshots.append(snapshot)
    return sorted(snapshots)


def report(lake: Lake, snapshot: str) -> dict[str, Any]:
    json_key, _ = monitoring_report_keys(snapshot)
    if not lake.exists(json_key):
        raise NoData(NO_REPORT)
    return dict(lake.read_json(json_key))


def report_html(lake: Lake, snapshot: str) -> bytes | None:
    _, html_key = monitoring_report_keys(snapshot)
    return lake.get_bytes(html_key) if lake.exists(html_key) else None


def drift_history(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per snapshot and feature (the scores as `win_probability`): PSI, p-value, verdict."""
    rows = []
    for snapshot, body in reports.items():
        drifts = list(body.get("features") or [])
        if body.get("prediction"):
            drifts.append(body["prediction"])
        for d in drifts:
            rows.append(
                {
                    "snapshot": snapshot,
                    "feature": d["name"],
                    "kind": d["kind"],
                    "psi": d["psi"],
                    "test": d["test"],
                    "p_value": d["p_value"],
                    "drifted": bool(d["drifted"]),
                    "judged": bool(d.get("judged", True)),
                }
            )
    columns = ["snapshot", "feature", "kind", "psi", "test", "p_value", "drifted", "judged"]
    return pd.DataFrame(rows, columns=columns)


def skew_frame(body: Mapping[str, Any]) -> pd.DataFrame | None:
    """Mismatch rate per feature of the served sample recomputed offline (None: not checked)."""
    skew = body.get("skew")
    if not skew or not skew.get("features"):
        return None
    rows = [
        {"feature": name, "rate": f.get("rate", 0.0), "mismatches": f.get("mismatches", 0)}
        for name, f in skew["features"].items()
    ]
    return pd.DataFrame(rows).sort_values(["rate", "feature"], ascending=[False, True])


def performance_by_week(body: Mapping[str, Any]) -> pd.DataFrame:
    """Realised Brier per week of the predictions, with the base rate's, long form for a chart."""
    rows = []
    for r in (body.get("performance") or {}).get("by_week", []):
        label = f"{r['source']} v{r['model_version']}"
        rows.append(
            {"week": r["week"], "who": label, "brier": r.get("brier"), "pairs": r.get("pairs")}
        )
        if r.get("base_rate_brier") is not None:
            rows.append(
                {
                    "week": r["week"],
                    "who": f"base rate (v{r['model_version']})",
                    "brier": r["base_rate_brier"],
                    "pairs": r.get("pairs"),
                }
            )
    return pd.DataFrame(rows, columns=["week", "who", "brier", "pairs"])


def performance_by_version(body: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame((body.get("performance") or {}).get("by_version", []))
