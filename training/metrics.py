"""Test-window metrics: discrimination, probability quality, calibration, and the oracle.

The base-rate Brier and log loss (predicting the training win rate for every deal) are the floor
a useful model must beat (`training.skill` turns them into skill scores with intervals). With
synthetic data the true win probability is known: the oracle's AUC and Brier on the *same* test
examples are the ceiling, and the ratios say how much of the learnable signal the model
recovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

# Probabilities are clipped to [EPS, 1 - EPS] wherever a logit or a log loss is taken.
EPS = 1e-6


@dataclass(frozen=True)
class Reliability:
    """Mean predicted vs observed win rate per probability bin (empty bins left out)."""

    predicted: list[float]
    observed: list[float]
    counts: list[int]


def reliability_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> Reliability:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            predicted.append(float(p[mask].mean()))
            observed.append(float(y[mask].mean()))
            counts.append(int(mask.sum()))
    return Reliability(predicted, observed, counts)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed - predicted| over equal-width bins."""
    curve = reliability_curve(y, p, bins)
    total = sum(curve.counts)
    return float(
        sum(
            n * abs(o - q)
            for n, o, q in zip(curve.counts, curve.observed, curve.predicted, strict=True)
        )
        / total
    )


def probability_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1.0 - EPS)
    y = np.asarray(y)
    return {
        "auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
        "ece": expected_calibration_error(y, p),
    }


def evaluate(
    y: np.ndarray,
    p: np.ndarray,
    *,
    base_rate: float,
    true_probability: np.ndarray | None = None,
) -> dict[str, float]:
    """Model metrics plus the base rate's Brier and log loss and, when the truth is known, oracle
    ratios. The base rate is the training win rate, predicted for every test example."""
    out = probability_metrics(y, p)
    out["base_rate"] = float(base_rate)
    out["base_rate_brier"] = float(np.mean((np.asarray(y) - base_rate) ** 2))
    constant = np.full(len(y), float(base_rate))
    out["base_rate_log_loss"] = float(log_loss(y, np.clip(constant, EPS, 1 - EPS), labels=[0, 1]))
    out["positive_rate"] = float(np.mean(y))
    if true_probability is not None:
        oracle = probability_metrics(y, true_probability)
        out["oracle_auc"] = oracle["auc"]
        out["oracle_brier"] = oracle["brier"]
        out["oracle_log_loss"] = oracle["log_loss"]
        out["auc_ratio_to_oracle"] = out["auc"] / oracle["auc"]
        out["brier_ratio_to_oracle"] = out["brier"] / oracle["brier"]
    return out
