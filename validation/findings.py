"""A finding: one rule, on one table, with its category, severity, count and a few examples.

The rule that creates a finding sets its `category`; the score and the gate select findings by
category (and table or column), never by rule id: ids are names for people and reports.
Row-level error findings also carry the positions of the offending rows, which is how rows end up
in quarantine; that array never goes into the report.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5


class Severity(StrEnum):
    ERROR = "error"  # the row is unusable: it goes to quarantine
    WARNING = "warning"  # usable (maybe after an alias), but someone should know
    INFO = "info"  # a property of the data downstream code must respect


class Category(StrEnum):
    """What kind of problem a finding is. The score and the gate read these categories:

    - MISSING     a required value is empty              score `missing`
    - DUPLICATE   an id or a whole deal repeats          score `duplicates`
    - REFERENCE   a value names no row of its dimension  on sales_pipeline: score `references`,
                                                         gate `unresolved_reference_rate`
    - VALUE       a value outside its range or allowed   on sales_pipeline.deal_stage: gate
                  set                                    `unknown_stage_rate`
    - GATE        a dataset-level failure                blocking: nothing is published

    and these only describe: CONSISTENCY (a deal's stage, dates and value contradict each other),
    SCHEMA (a column is missing or not of its type), ALIAS (a known spelling variant was
    rewritten), QUIRK (a known property of the data that feature code must handle).
    Violations and warnings are scored by severity, whatever the category.
    """

    MISSING = "missing"
    DUPLICATE = "duplicate"
    REFERENCE = "reference"
    VALUE = "value"
    CONSISTENCY = "consistency"
    SCHEMA = "schema"
    ALIAS = "alias"
    QUIRK = "quirk"
    GATE = "gate"


@dataclass
class Finding:
    rule_id: str
    table: str
    severity: Severity
    count: int
    message: str
    examples: list[Any] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # rule-specific numbers
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    category: Category = field(kw_only=True)
    column: str | None = field(default=None, kw_only=True)  # when the rule is about one column

    @property
    def blocking(self) -> bool:
        """A failed gate rule: the snapshot must not be published, whatever its score."""
        return self.category is Category.GATE

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "table": self.table,
            "column": self.column,
            "category": self.category.value,
            "severity": self.severity.value,
            "count": int(self.count),
            "blocking": self.blocking,
            "message": self.message,
            "examples": [jsonable(e) for e in self.examples[:MAX_EXAMPLES]],
            "details": jsonable(self.details),
        }


def select(
    findings: Iterable[Finding],
    category: Category,
    *,
    table: str | None = None,
    column: str | None = None,
) -> list[Finding]:
    """The findings of `category`, optionally only those on `table` (and `column`)."""
    return [
        f
        for f in findings
        if f.category is category
        and (table is None or f.table == table)
        and (column is None or f.column == column)
    ]


def total(
    findings: Iterable[Finding],
    category: Category,
    *,
    table: str | None = None,
    column: str | None = None,
) -> int:
    """Sum of the counts of `select(findings, category, table=..., column=...)`."""
    return sum(f.count for f in select(findings, category, table=table, column=column))


def row_examples(frame: pd.DataFrame, mask: np.ndarray, columns: list[str]) -> list[dict]:
    """Up to MAX_EXAMPLES offending rows, restricted to the columns that explain the finding."""
    positions = np.flatnonzero(mask)[:MAX_EXAMPLES]
    sample = frame.iloc[positions][columns]
    return [{k: jsonable(v) for k, v in row.items()} for row in sample.to_dict("records")]


def jsonable(value: Any) -> Any:
    """Plain JSON value for anything pandas/numpy/pyarrow hands back (NA and NaT become None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        stamp = pd.Timestamp(value)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        if math.isnan(value):
            return None
        # JSON has no infinity: an offending `inf` is shown as text, not as invalid `Infinity`.
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    return value
