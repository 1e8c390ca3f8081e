"""The leakage guard: refuse outcome-bearing features before any model is fitted.

Two checks, both fatal (`LeakageError`):

1. By contract. A feature whose name (after the Feast view prefix, `view__name`) is in
   `REFUSED_NAMES` or starts with one of `REFUSED_PREFIXES` is known only once the deal is closed
   (`close_value` is 0 for every Lost deal and > 0 for every Won one; `close_date` says when it
   closed; the final `deal_stage` *is* the label). Historical aggregates such as `closed_30d` or
   `won_all` are fine: they count *other* deals closed before the as-of time.
2. By evidence. A single feature that separates the classes almost perfectly on the training set
   (univariate ROC AUC, max(auc, 1 - auc), above `MAX_UNIVARIATE_AUC`) is far stronger than any
   honest CRM signal; it is almost surely derived from the outcome, so the run stops and names it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training.errors import LeakageError
from training.features import LABEL, TRUE_PROBABILITY

REFUSED_NAMES: frozenset[str] = frozenset(
    {
        "close_value",
        "close_date",
        "deal_stage",
        "stage",
        "final_stage",
        "won",
        "is_won",
        "lost",
        "is_lost",
        "outcome",
        LABEL,
        TRUE_PROBABILITY,
        "days_to_close",
        "deal_duration",
        "duration_days",
    }
)
REFUSED_PREFIXES: tuple[str, ...] = ("close_value", "close_date", "close_", "days_to_close")
MAX_UNIVARIATE_AUC = 0.9


def base_name(column: str) -> str:
    """`sales_agent_daily_stats__win_rate_90d` -> `win_rate_90d` (Feast full feature names)."""
    return column.split("__")[-1].split(":")[-1].strip().lower()


def refused_columns(columns: Iterable[str]) -> list[str]:
    refused = []
    for column in columns:
        name = base_name(column)
        if name in REFUSED_NAMES or name.startswith(REFUSED_PREFIXES):
            refused.append(column)
    return refused


def check_refused(columns: Iterable[str]) -> None:
    """Raise if any feature is on the refused list (known only after the outcome)."""
    refused = refused_columns(columns)
    if refused:
        raise LeakageError(
            f"Leakage guard: refused feature(s) {', '.join(refused)}: known only after the deal "
            "closed (close_value/close_date/final stage or derived from them). Remove them from "
            "the feature service (or the examples frame) and train again."
        )


def _score_column(values: pd.Series, y: np.ndarray) -> np.ndarray:
    """A numeric score for one feature: itself if numeric, else its category's label rate."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numeric = values.astype("float64")
        return numeric.fillna(numeric.median()).fillna(0.0).to_numpy()
    keys = values.astype("string").fillna("<missing>")
    rates = pd.Series(y, index=values.index).groupby(keys).mean()
    return keys.map(rates).astype("float64").to_numpy()


def univariate_auc(frame: pd.DataFrame, y: np.ndarray, columns: Iterable[str]) -> dict[str, float]:
    """max(auc, 1 - auc) of each column alone against the label."""
    out: dict[str, float] = {}
    for column in columns:
        score = _score_column(frame[column], y)
        if np.all(score == score[0]):
            out[column] = 0.5
            continue
        auc = float(roc_auc_score(y, score))
        out[column] = max(auc, 1.0 - auc)
    return out


def check_univariate(
    frame: pd.DataFrame,
    y: np.ndarray,
    columns: Iterable[str],
    threshold: float = MAX_UNIVARIATE_AUC,
) -> dict[str, float]:
    """Raise if one feature alone predicts the label too well; return the AUCs otherwise."""
    aucs = univariate_auc(frame, y, columns)
    suspicious = {c: a for c, a in aucs.items() if a > threshold}
    if suspicious:
        worst = ", ".join(f"{c} (AUC {a:.3f})" for c, a in sorted(suspicious.items()))
        raise LeakageError(
            f"Leakage guard: feature(s) {worst} alone separate won from lost deals on the "
            f"training set (univariate AUC > {threshold}). Such a feature is almost surely "
            "derived from the outcome: check how it is computed (point-in-time?) and remove it."
        )
    return aucs


def guard(frame: pd.DataFrame, y: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Both checks, contract first (cheap and the clearest message)."""
    check_refused(columns)
    return check_univariate(frame, y, columns)
