"""A finding: one rule, on one table, with its severity, count and a few examples.

Row-level error findings also carry the positions of the offending rows, which is how rows end up
in quarantine; that array never goes into the report.
"""

from __future__ import annotations

import datetime as dt
import math
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


@dataclass
class Finding:
    rule_id: str
    table: str
    severity: Severity
    count: int
    message: str
    examples: list[Any] = field(default_factory=list)
    blocking: bool = False  # a gate rule that failed: the snapshot must not be published
    details: dict[str, Any] = field(default_factory=dict)  # rule-specific numbers
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "table": self.table,
            "severity": self.severity.value,
            "count": int(self.count),
            "blocking": self.blocking,
            "message": self.message,
            "examples": [jsonable(e) for e in self.examples[:MAX_EXAMPLES]],
            "details": jsonable(self.details),
        }


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
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
