"""The validation report (JSON for machines, one self-contained HTML page for people) and the
history of scores the explorer charts.
"""

from __future__ import annotations

import html
import json
from typing import Any

from infra.lake import Lake
from infra.layout import VALIDATION_HISTORY_KEY, validation_report_prefix
from validation.findings import Severity
from validation.result import ValidationResult
from validation.score import WEIGHTS


def report_keys(snapshot: str) -> tuple[str, str]:
    prefix = validation_report_prefix(snapshot)
    return f"{prefix}/report.json", f"{prefix}/report.html"


def report_dict(result: ValidationResult) -> dict[str, Any]:
    return {
        "snapshot": result.snapshot,
        "validated_at": result.validated_at,
        "passed": result.passed,
        "score": round(result.score.value, 6),
        "threshold": result.threshold,
        "score_components": result.score.to_dict(),
        "score_weights": dict(WEIGHTS),
        "aliases_version": result.aliases_version,
        "row_counts": result.row_counts,
        "findings_by_severity": result.severity_counts(),
        "blocking": [f.rule_id for f in result.blocking],
        "validated_manifest": result.validated_manifest,
        "duration_s": round(result.duration_s, 3),
        "findings": [f.to_dict() for f in result.findings],
    }


def write_report(lake: Lake, result: ValidationResult) -> None:
    """Write report.json, report.html and the history entry of this run."""
    result.report_key, result.html_key = report_keys(result.snapshot)
    body = report_dict(result)
    lake.write_json(result.report_key, body)
    lake.put_bytes(result.html_key, render_html(body).encode("utf-8"))
    update_history(lake, result)


def read_history(lake: Lake) -> list[dict[str, Any]]:
    return (
        list(lake.read_json(VALIDATION_HISTORY_KEY)) if lake.exists(VALIDATION_HISTORY_KEY) else []
    )


def update_history(lake: Lake, result: ValidationResult) -> list[dict[str, Any]]:
    """One entry per snapshot (the latest run wins), sorted by snapshot."""
    entries = {e["snapshot"]: e for e in read_history(lake)}
    entries[result.snapshot] = {
        "snapshot": result.snapshot,
        "score": round(result.score.value, 6),
        "passed": result.passed,
        "validated_at": result.validated_at,
    }
    history = [entries[k] for k in sorted(entries)]
    lake.write_json(VALIDATION_HISTORY_KEY, history)
    return history


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{margin-bottom:.2rem} .pass{color:#176b2c} .fail{color:#a61b1b}
table{border-collapse:collapse;margin:1rem 0;width:100%} th,td{border:1px solid #ccc;
padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem} th{background:#f2f2f2}
.error{background:#fde8e8} .warning{background:#fff6dc} .info{background:#eef4fb}
pre{margin:0;white-space:pre-wrap;font-size:.8rem} .badge{font-weight:bold}
"""


def render_html(report: dict[str, Any]) -> str:
    """One page with inline CSS only, readable offline."""
    e = html.escape
    verdict = "PASSED" if report["passed"] else "FAILED"
    css_class = "pass" if report["passed"] else "fail"
    counts = "".join(
        f"<tr><td>{e(t)}</td><td>{c['in']}</td><td>{c['validated']}</td>"
        f"<td>{c['quarantined']}</td></tr>"
        for t, c in report["row_counts"].items()
    )
    components = "".join(
        f"<tr><td>{e(k)}</td><td>{v:.4f}</td><td>{report['score_weights'].get(k, '')}</td></tr>"
        for k, v in report["score_components"].items()
        if k != "value"
    )
    findings = "".join(
        f"<tr class='{e(f['severity'])}'><td>{e(f['rule_id'])}</td><td>{e(f['table'])}</td>"
        f"<td class='badge'>{e(f['severity'])}{' (blocking)' if f['blocking'] else ''}</td>"
        f"<td>{e(f['category'])}</td>"
        f"<td>{f['count']}</td><td>{e(f['message'])}</td>"
        f"<td><pre>{e(json.dumps(f['examples'], indent=1, default=str))}</pre></td></tr>"
        for f in report["findings"]
    )
    by_severity = ", ".join(f"{n} {s}" for s, n in report["findings_by_severity"].items())
    published = report["validated_manifest"] or "not published"
    blocking = ", ".join(report["blocking"]) or "none"
    severities = ", ".join(s.value for s in Severity)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation report — snapshot {e(report["snapshot"])}</title><style>{_CSS}</style></head>
<body>
<h1>Validation report — snapshot {e(report["snapshot"])}</h1>
<p class="{css_class}"><span class="badge">{verdict}</span>: score
<b>{report["score"]:.4f}</b> (threshold {report["threshold"]:.2f}); blocking rules failed:
{e(blocking)}.</p>
<p>Validated at {e(report["validated_at"])} in {report["duration_s"]} s · aliases version
{e(report["aliases_version"])} · validated manifest: {e(published)} ·
findings: {e(by_severity)}</p>
<h2>Rows</h2>
<table><tr><th>table</th><th>in</th><th>validated</th><th>quarantined</th></tr>{counts}</table>
<h2>Score</h2>
<p>score = clip(1 − Σ weight × rate, 0, 1); info findings do not count.</p>
<table><tr><th>rate</th><th>value</th><th>weight</th></tr>{components}</table>
<h2>Findings</h2>
<p>Severities: {e(severities)}. Error rows are quarantined with their rule ids in
<code>_reasons</code>; warnings are kept; info describes the data. The score and the gate
select findings by category.</p>
<table><tr><th>rule</th><th>table</th><th>severity</th><th>category</th><th>count</th>
<th>message</th><th>examples (up to 5)</th></tr>{findings}</table>
</body></html>
"""
