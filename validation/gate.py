"""The quality gate: which failures make a snapshot unusable, and the error that stops a flow.

Blocking rules (any one fails the gate, whatever the score); each is a finding of category GATE,
which is what makes a finding blocking:

- `gate.missing_table`     a table is absent or lacks contract columns (found in `validation.run`).
- `gate.empty_table`       a table has zero rows.
- `gate.quarantine_rate`   more than `max_quarantine_rate` (5 %) of a table's rows quarantined.
- `gate.unknown_stage_rate` more than `max_unknown_stage_rate` (1 %) of deals with an unknown
                           stage: the counts of VALUE findings on sales_pipeline.deal_stage.
- `gate.unresolved_reference_rate` more than `max_unresolved_rate` (1 %) of deals whose
                           product, agent or account does not resolve: the counts of REFERENCE
                           findings on sales_pipeline.
- `gate.no_closed_deals`   the pipeline has no Won or no Lost deal left: nothing to learn from.

The gate also fails when the quality score is below the threshold the caller passes (the flow's
default is the settings' `quality_threshold`, `CRM_QUALITY_THRESHOLD`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ingestion.tables import SALES_PIPELINE, TABLES
from validation.errors import ValidationGateError
from validation.findings import Category, Finding, Severity, total
from validation.result import ValidationResult


@dataclass(frozen=True)
class GateLimits:
    max_quarantine_rate: float = 0.05
    max_unknown_stage_rate: float = 0.01
    max_unresolved_rate: float = 0.01


def _blocking(rule_id: str, table: str, count: int, message: str, examples: list) -> Finding:
    return Finding(rule_id, table, Severity.ERROR, count, message, examples, category=Category.GATE)


def gate_findings(
    findings: list[Finding],
    row_counts: Mapping[str, Mapping[str, int]],
    validated: Mapping[str, pa.Table],
    limits: GateLimits = GateLimits(),  # noqa: B008 - frozen, immutable default
) -> list[Finding]:
    """The blocking findings implied by the row-level findings and the row counts."""
    out: list[Finding] = []
    for table in TABLES:
        counts = row_counts[table]
        rows, quarantined = counts["in"], counts["quarantined"]
        if rows == 0:
            out.append(
                _blocking(
                    "gate.empty_table",
                    table,
                    0,
                    f"{table} has no rows: land a complete export.",
                    [],
                )
            )
            continue
        rate = quarantined / rows
        if rate > limits.max_quarantine_rate:
            out.append(
                _blocking(
                    "gate.quarantine_rate",
                    table,
                    quarantined,
                    f"{quarantined} of {rows} {table} rows ({rate:.1%}) quarantined, above the "
                    f"{limits.max_quarantine_rate:.0%} limit.",
                    [{"rate": round(rate, 4), "limit": limits.max_quarantine_rate}],
                )
            )
    deals = row_counts[SALES_PIPELINE]["in"]
    if deals:
        unknown_stage = total(findings, Category.VALUE, table=SALES_PIPELINE, column="deal_stage")
        if unknown_stage / deals > limits.max_unknown_stage_rate:
            out.append(
                _blocking(
                    "gate.unknown_stage_rate",
                    SALES_PIPELINE,
                    unknown_stage,
                    f"{unknown_stage} of {deals} deals have an unknown deal_stage, above the "
                    f"{limits.max_unknown_stage_rate:.0%} limit.",
                    [],
                )
            )
        unresolved = total(findings, Category.REFERENCE, table=SALES_PIPELINE)
        if unresolved / deals > limits.max_unresolved_rate:
            out.append(
                _blocking(
                    "gate.unresolved_reference_rate",
                    SALES_PIPELINE,
                    unresolved,
                    f"{unresolved} unresolved product/agent/account references in {deals} deals, "
                    f"above the {limits.max_unresolved_rate:.0%} limit: fix the dimension files "
                    "or add a known alias to validation/aliases.py.",
                    [],
                )
            )
        stages = set(pc.unique(validated[SALES_PIPELINE].column("deal_stage")).to_pylist())
        missing = sorted({"Won", "Lost"} - stages)
        if missing:
            out.append(
                _blocking(
                    "gate.no_closed_deals",
                    SALES_PIPELINE,
                    0,
                    f"No valid {' or '.join(missing)} deal left: there is no label to learn from.",
                    [],
                )
            )
    return out


def gate_message(result: ValidationResult) -> str:
    """Why the snapshot failed, which rules, and where the report is."""
    reasons = []
    if result.below_threshold:
        reasons.append(f"score {result.score.value:.2f} < threshold {result.threshold:.2f}")
    else:
        reasons.append(f"score {result.score.value:.2f} meets threshold {result.threshold:.2f}")
    blocking = result.blocking
    if blocking:
        details = "; ".join(f"{f.rule_id} ({f.table}): {f.message.rstrip('.')}" for f in blocking)
        reasons.append(f"{len(blocking)} blocking rule(s) failed: {details}")
    where = result.html_key or "the validation report"
    return (
        f"Snapshot {result.snapshot} failed validation: {'; '.join(reasons)}. "
        f"Nothing was published to validated/. See {where}."
    )


def ensure_valid(result: ValidationResult) -> ValidationResult:
    """Raise ValidationGateError unless the snapshot passed; return it otherwise."""
    if not result.passed:
        raise ValidationGateError(gate_message(result))
    return result
