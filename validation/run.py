"""Validate a landed snapshot: contracts, rules, score, quarantine, report and the gate.

`validate_tables` is the whole decision on in-memory Arrow tables (no lake, no Prefect);
`validate_snapshot` reads the snapshot through its raw manifest, writes quarantine and the report,
and publishes the validated tables with one manifest only if the gate passes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from infra.lake import Lake, LakeError
from infra.layout import (
    quarantine_key,
    raw_key,
    raw_manifest_key,
    validated_key,
    validated_manifest_key,
)
from ingestion.tables import (
    ACCOUNTS,
    PRODUCTS,
    SALES_PIPELINE,
    SALES_TEAMS,
    SCHEMAS,
    TABLES,
    ignored_columns,
)
from validation.aliases import ALIASES_VERSION, aliases_for
from validation.contracts import check_contract
from validation.errors import SnapshotNotLandedError, ValidationError
from validation.findings import Category, Finding, Severity
from validation.gate import GateLimits, gate_findings
from validation.report import write_report
from validation.result import ValidationResult
from validation.rules import (
    duplicate_rules,
    informational_rules,
    reference_rules,
    stage_rules,
    usage_rules,
)
from validation.score import Score, quality_score

REASONS_COLUMN = "_reasons"


@dataclass
class Outcome:
    """Everything `validate_tables` decided, before anything is written."""

    findings: list[Finding]
    score: Score
    validated: dict[str, pa.Table]
    quarantined: dict[str, pa.Table]
    row_counts: dict[str, dict[str, int]]
    threshold: float

    @property
    def passed(self) -> bool:
        return self.score.value >= self.threshold and not any(f.blocking for f in self.findings)


def validate_tables(
    tables: Mapping[str, pa.Table],
    *,
    threshold: float,
    limits: GateLimits = GateLimits(),  # noqa: B008 - frozen, immutable default
) -> Outcome:
    """Run every rule on the four tables and split each into validated and quarantined rows."""
    findings: list[Finding] = []
    raw: dict[str, pa.Table] = {}
    for name in TABLES:
        findings += _extra_columns(name, tables.get(name))
        table, problem = _conform(name, tables.get(name))
        raw[name] = table
        if problem:
            findings.append(problem)

    aliased: dict[str, pa.Table] = {}
    for name in TABLES:
        aliased[name], alias_findings = apply_aliases(name, raw[name])
        findings += alias_findings
    frames = {name: to_frame(t) for name, t in aliased.items()}

    for name in TABLES:
        findings += check_contract(name, frames[name])
    # References resolve against the dimension rows that survive their own contracts.
    clean = {
        name: frames[name][~_error_mask(findings, name, len(frames[name]))]
        for name in (ACCOUNTS, PRODUCTS, SALES_TEAMS)
    }
    pipeline = frames[SALES_PIPELINE]
    findings += stage_rules(pipeline)
    findings += reference_rules(pipeline, clean[ACCOUNTS], clean[PRODUCTS], clean[SALES_TEAMS])
    findings += duplicate_rules(pipeline)
    findings += usage_rules(pipeline, frames[ACCOUNTS], frames[SALES_TEAMS])
    findings += informational_rules(pipeline, frames[ACCOUNTS])

    validated: dict[str, pa.Table] = {}
    quarantined: dict[str, pa.Table] = {}
    row_counts: dict[str, dict[str, int]] = {}
    for name in TABLES:
        bad = _error_mask(findings, name, raw[name].num_rows)
        validated[name] = aliased[name].filter(pa.array(~bad))
        quarantined[name] = (
            raw[name]
            .filter(pa.array(bad))
            .append_column(
                REASONS_COLUMN, pa.array(_reasons(findings, name, bad), type=pa.string())
            )
        )
        row_counts[name] = {
            "in": raw[name].num_rows,
            "validated": validated[name].num_rows,
            "quarantined": quarantined[name].num_rows,
        }
    findings += gate_findings(findings, row_counts, validated, limits)
    score = quality_score(
        findings,
        rows={n: t.num_rows for n, t in raw.items()},
        cells={n: t.num_rows * t.num_columns for n, t in raw.items()},
    )
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings.sort(key=lambda f: (not f.blocking, order[f.severity], f.table, f.rule_id))
    return Outcome(findings, score, validated, quarantined, row_counts, threshold)


def apply_aliases(name: str, table: pa.Table) -> tuple[pa.Table, list[Finding]]:
    """Rewrite the known spelling variants of `validation.aliases`; one warning per alias used."""
    findings: list[Finding] = []
    for column, mapping in aliases_for(name).items():
        if column not in table.column_names:
            continue
        values = table.column(column)
        for variant, canonical in mapping.items():
            hits = int(pc.sum(pc.equal(values, variant)).as_py() or 0)
            if not hits:
                continue
            findings.append(
                Finding(
                    f"alias.{name}.{column}",
                    name,
                    Severity.WARNING,
                    hits,
                    f"{hits} {name}.{column} value(s) '{variant}' rewritten to '{canonical}' "
                    f"(known alias, aliases version {ALIASES_VERSION}).",
                    examples=[{"found": variant, "canonical": canonical, "rows": hits}],
                    category=Category.ALIAS,
                    column=column,
                )
            )
            values = pc.if_else(pc.equal(values, variant), canonical, values)
        table = table.set_column(table.column_names.index(column), column, values.cast(pa.string()))
    return table, findings


def to_frame(table: pa.Table) -> pd.DataFrame:
    """pandas view for the rules: nullable Int64, object strings, datetime64[s] dates (seconds:
    any date a table can hold, 0001-01-01 included, fits; nanoseconds stop at 2262)."""
    frame = table.to_pandas(
        date_as_object=False, types_mapper={pa.int64(): pd.Int64Dtype()}.get
    ).reset_index(drop=True)
    for name, field_type in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_date(field_type):
            frame[name] = frame[name].astype("datetime64[s]")
    return frame


def _conform(name: str, table: pa.Table | None) -> tuple[pa.Table, Finding | None]:
    """The table in its landed schema, or an empty one plus a blocking finding."""
    schema = SCHEMAS[name]
    if table is None:
        problem = f"{name} is missing from the snapshot: land all four tables together."
        return schema.empty_table(), _missing(name, problem, [])
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        problem = f"{name} lacks column(s) {', '.join(missing)}: land a complete export."
        return schema.empty_table(), _missing(name, problem, missing)
    try:
        return table.select(schema.names).cast(schema), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        problem = f"{name} does not have the landed types ({exc}): re-land the snapshot."
        return schema.empty_table(), _missing(name, problem, [])


def _extra_columns(name: str, table: pa.Table | None) -> list[Finding]:
    """A warning for columns the source file had beyond the contract (they were not landed)."""
    extra = ignored_columns(table) if table is not None else []
    if not extra:
        return []
    return [
        Finding(
            f"{name}.extra_columns",
            name,
            Severity.WARNING,
            len(extra),
            f"{name}.csv has column(s) {', '.join(extra)} beyond the contract: they were not "
            "landed. Drop them from the export, or add them to ingestion.tables.SCHEMAS and the "
            "contracts if they are needed.",
            examples=list(extra),
            category=Category.SCHEMA,
        )
    ]


def _missing(name: str, message: str, columns: list[str]) -> Finding:
    return Finding(
        "gate.missing_table", name, Severity.ERROR, 1, message, columns, category=Category.GATE
    )


def _error_mask(findings: list[Finding], table: str, rows: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    for f in findings:
        if f.table == table and f.severity is Severity.ERROR and f.rows is not None:
            mask[f.rows] = True
    return mask


def _reasons(findings: list[Finding], table: str, bad: np.ndarray) -> list[str]:
    """For each quarantined row (in order), the '; '-joined ids of the rules it broke."""
    position = np.full(len(bad), -1, dtype=np.int64)
    position[bad] = np.arange(int(bad.sum()))
    reasons: list[list[str]] = [[] for _ in range(int(bad.sum()))]
    for f in findings:
        if f.table == table and f.severity is Severity.ERROR and f.rows is not None:
            for row in position[f.rows]:
                reasons[row].append(f.rule_id)
    return ["; ".join(r) for r in reasons]


def read_landed(lake: Lake, snapshot: str) -> dict[str, pa.Table]:
    """The four landed tables of `snapshot`, through its raw manifest (never half a snapshot)."""
    manifest_key = raw_manifest_key(snapshot)
    if not lake.exists(manifest_key):
        raise SnapshotNotLandedError(
            f"Snapshot {snapshot} is not landed (no {lake.uri(manifest_key)}): "
            "run `crm land` for it first."
        )
    manifest = lake.read_manifest(manifest_key)
    tables: dict[str, pa.Table] = {}
    for name in TABLES:
        if raw_key(name, snapshot) in manifest.objects:
            tables[name] = lake.read_published(manifest_key, raw_key(name, snapshot))
    return tables


def validate_snapshot(
    lake: Lake,
    snapshot: str,
    *,
    threshold: float,
    limits: GateLimits = GateLimits(),  # noqa: B008 - frozen, immutable default
) -> ValidationResult:
    """Validate a landed snapshot; publish `validated/` only when the gate passes.

    `threshold` is the minimum quality score; the caller decides it (the `validate` flow passes
    the settings' `quality_threshold` unless told otherwise), so it is never defaulted here.

    The report, the history entry and the quarantine are written whatever the outcome, so a
    failed snapshot can be inspected; a failure also withdraws an earlier validated manifest of the
    same snapshot, so nothing downstream keeps running on data that no longer passes.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError(f"threshold must be within [0, 1], got {threshold}.")
    started = time.perf_counter()
    tables = read_landed(lake, snapshot)
    outcome = validate_tables(tables, threshold=threshold, limits=limits)
    result = ValidationResult(
        snapshot=snapshot,
        score=outcome.score,
        threshold=threshold,
        findings=outcome.findings,
        row_counts=outcome.row_counts,
        aliases_version=ALIASES_VERSION,
        validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        for name, table in outcome.quarantined.items():
            lake.write_parquet(quarantine_key(name, snapshot), table)
        if result.passed:
            raw_txid = lake.read_manifest(raw_manifest_key(snapshot)).txid
            manifest = lake.publish(
                validated_manifest_key(snapshot),
                {validated_key(n, snapshot): t for n, t in outcome.validated.items()},
                {
                    "snapshot": snapshot,
                    "score": round(outcome.score.value, 6),
                    "threshold": threshold,
                    "aliases_version": ALIASES_VERSION,
                    "raw_txid": raw_txid,
                    "row_counts": outcome.row_counts,
                    "validated_at": result.validated_at,
                },
            )
            result.validated_manifest = manifest.key
        else:
            _withdraw(lake, snapshot)
        result.duration_s = time.perf_counter() - started
        write_report(lake, result)
    except LakeError as exc:
        raise ValidationError(
            f"Validation of snapshot {snapshot} could not write its outputs: {exc}"
        ) from exc
    return result


def _withdraw(lake: Lake, snapshot: str) -> None:
    """Remove a previously published validated snapshot (its manifest first: the commit point),
    under the same lease as a publish of it."""
    lake.withdraw(
        validated_manifest_key(snapshot), [validated_key(name, snapshot) for name in TABLES]
    )
