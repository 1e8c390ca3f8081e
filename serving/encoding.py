"""Feature rows -> the model's numeric matrix, without pandas on the hot path.

Mirrors `training.features.FeatureSpec.encode` value by value (numbers as float64, booleans as
0/1, categoricals as the index of their training level, anything else NaN); a unit test holds the
two to the same output. The request-time features mirror the on-demand view
`opportunity_request_features` (a unit test runs Feast's own UDF on the same inputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from infra.clock import utc
from training.features import FeatureSpec

NAN = float("nan")
SECONDS_PER_DAY = 86_400
PRICE_TIER_EDGES = (1_000, 10_000)  # USD, as in feature_repo/on_demand.py


def days_open(engage_date: datetime | None, request_timestamp: datetime) -> int:
    """Whole days from engagement to the request, 0 if not engaged yet or engaged later."""
    if engage_date is None:
        return 0
    seconds = (utc(request_timestamp) - utc(engage_date)).total_seconds()
    return max(0, int(seconds // SECONDS_PER_DAY))


def engage_month(engage_date: datetime | None) -> int:
    """Month of the engagement in UTC, 1-12; 0 when not engaged yet (seasonality of the deal)."""
    return 0 if engage_date is None else utc(engage_date).month


def engage_quarter_end(month: int) -> int:
    """1 if the engagement month ends a quarter (Mar/Jun/Sep/Dec), else 0 (0 for no month)."""
    return int(month > 0 and month % 3 == 0)


def list_price_tier(price: float | None) -> int:
    """0 below 1,000 USD, 1 below 10,000, else 2 (missing price: 0, as pandas' NaN >= x)."""
    if price is None or (isinstance(price, float) and math.isnan(price)):
        return 0
    return sum(1 for edge in PRICE_TIER_EDGES if price >= edge)


def _number(value: Any) -> float:
    if value is None or isinstance(value, str):
        return _numeric_string(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _numeric_string(value: str | None) -> float:
    """pd.to_numeric(errors='coerce') on a string: its number if it parses, else NaN."""
    if value is None:
        return NAN
    try:
        return float(value)
    except ValueError:
        return NAN


class Encoder:
    """Precomputed column order and level lookups of one model's `FeatureSpec`."""

    def __init__(self, spec: FeatureSpec, columns: Sequence[str] | None = None) -> None:
        """`columns`: the booster's own feature order (the spec's order may differ once its
        metadata went through MLflow, which sorts mapping keys)."""
        self.spec = spec
        self.columns = list(columns) if columns else spec.columns
        if sorted(self.columns) != sorted(spec.columns):
            raise ValueError(f"Booster features {self.columns} differ from the spec's.")
        self.feature_types = ["c" if name in spec.categorical else "q" for name in self.columns]
        self.index = {name: i for i, name in enumerate(self.columns)}
        self._numeric = [(self.index[n], n) for n in spec.numeric]
        self._categorical = [
            (self.index[n], n, {level: float(i) for i, level in enumerate(levels)})
            for n, levels in spec.categorical.items()
        ]

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        matrix = np.full((len(rows), len(self.columns)), NAN, dtype="float64")
        for r, row in enumerate(rows):
            out = matrix[r]
            for i, name in self._numeric:
                out[i] = _number(row.get(name))
            for i, name, levels in self._categorical:
                value = row.get(name)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    out[i] = levels.get(str(value), NAN)
        return matrix
