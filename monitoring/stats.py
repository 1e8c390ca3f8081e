"""The drift statistics: PSI over the reference's bins, and a two-sample test per feature type.

PSI (population stability index) is the effect size: sum over bins of (c - r) * ln(c / r), where
r and c are the reference's and the current rows' shares of a bin, a bin being a reference
decile (numeric) or a level (categorical), missing values a bin of their own. Shares of 0 are
floored at `PSI_FLOOR` so an empty bin costs a large but finite amount. The tests say whether a
difference is more than sampling noise: two-sample Kolmogorov-Smirnov for numbers, chi-square
of the current level counts against the reference's for categories. Both come from Evidently's
stat tests (the ones its report runs), so the JSON and the HTML report agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests import chi_stat_test, ks_stat_test
from evidently.legacy.core import ColumnType

PSI_FLOOR = 1e-4


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """PSI of two share vectors over the same bins (each sums to 1)."""
    r = np.maximum(np.asarray(reference, dtype="float64"), PSI_FLOOR)
    c = np.maximum(np.asarray(current, dtype="float64"), PSI_FLOOR)
    if r.shape != c.shape:
        raise ValueError(f"PSI needs the same bins on both sides ({r.size} vs {c.size})")
    return float(np.sum((c - r) * np.log(c / r)))


def ks_p_value(reference: pd.Series, current: pd.Series) -> float | None:
    """Two-sided two-sample KS p-value of the present (non-missing) numbers; None if a side has
    none."""
    ref = pd.to_numeric(reference, errors="coerce").dropna().astype("float64")
    cur = pd.to_numeric(current, errors="coerce").dropna().astype("float64")
    if ref.empty or cur.empty:
        return None
    return float(ks_stat_test(ref, cur, ColumnType.Numerical, None).drift_score)


def chi_square_p_value(reference: pd.Series, current: pd.Series) -> float | None:
    """Chi-square p-value of the current level counts against the reference's shares.

    A level the reference never had cannot be expected at all: its presence alone is drift
    (p = 0). One level on both sides is no evidence of a change (p = 1).
    """
    ref = reference.astype("string").dropna()
    cur = current.astype("string").dropna()
    if ref.empty or cur.empty:
        return None
    if not set(cur.unique()) <= set(ref.unique()):
        return 0.0
    if ref.nunique() < 2:
        return 1.0
    p = float(chi_stat_test(ref, cur, ColumnType.Categorical, None).drift_score)
    return None if math.isnan(p) else p
