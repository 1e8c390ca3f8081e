"""What one validation run produced (returned by `validate_snapshot`, read by the gate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from validation.findings import Finding, Severity
from validation.score import Score


@dataclass
class ValidationResult:
    snapshot: str
    score: Score
    threshold: float
    findings: list[Finding]
    row_counts: dict[str, dict[str, int]]  # table -> {"in", "validated", "quarantined"}
    aliases_version: str
    validated_at: str
    report_key: str = ""  # report.json
    html_key: str = ""  # report.html
    validated_manifest: str | None = None  # set only when the snapshot was published
    duration_s: float = 0.0

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def below_threshold(self) -> bool:
        return self.score.value < self.threshold

    @property
    def passed(self) -> bool:
        return not self.blocking and not self.below_threshold

    def severity_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        """The small dict a flow returns and a CLI prints."""
        return {
            "snapshot": self.snapshot,
            "score": round(self.score.value, 4),
            "threshold": self.threshold,
            "passed": self.passed,
            "findings": self.severity_counts(),
            "blocking": [f.rule_id for f in self.blocking],
            "rows": self.row_counts,
            "report": self.report_key,
            "html": self.html_key,
            "validated_manifest": self.validated_manifest,
        }
