"""Evaluation plots logged as MLflow artifacts (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from training.metrics import reliability_curve


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _curves(
    curves: dict[str, tuple[Any, Any]],
    path: Path,
    *,
    labels: tuple[str, str, str],
    legend: str,
    marker: str | None = None,
) -> Path:
    """One line per scorer on the unit square, with the diagonal for reference."""
    fig, ax = _pyplot().subplots(figsize=(5, 5))
    for name, (x, y) in curves.items():
        ax.plot(x, y, marker=marker, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    xlabel, ylabel, title = labels
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(loc=legend)
    return _save(fig, path)


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves of several scorers (model, baseline, oracle) on the same test examples."""
    curves = {name: tuple(roc_curve(y, p)[:2]) for name, p in scores.items()}
    labels = ("False positive rate", "True positive rate", "ROC, test window")
    return _curves(curves, path, labels=labels, legend="lower right")


def calibration_plot(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """Observed win rate against predicted probability, per scorer."""
    curves = {}
    for name, p in scores.items():
        curve = reliability_curve(y, p)
        curves[name] = (curve.predicted, curve.observed)
    labels = ("Predicted win probability", "Observed win rate", "Calibration")
    return _curves(curves, path, labels=labels, legend="upper left", marker="o")


def importance_plot(
    importance: dict[str, float], path: Path, top: int = 20, title: str = "XGBoost"
) -> Path:
    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = _pyplot().subplots(figsize=(7, max(3, 0.3 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="Total gain", title=f"Feature importance: {title}")
    return _save(fig, path)


def reliability_plot(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """The registered model's reliability diagram (raw and calibrated) over the test window,
    with how many examples each bin holds and the observed win rate as a line."""
    plt = _pyplot()
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for name, p in scores.items():
        curve = reliability_curve(y, p)
        ax.plot(curve.predicted, curve.observed, marker="o", label=name)
        counts.hist(p, bins=np.linspace(0, 1, 11), histtype="step", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    rate = float(np.mean(y))
    ax.axhline(rate, linestyle="--", color="grey", linewidth=0.8, label=f"win rate {rate:.3f}")
    ax.set(ylabel="Observed win rate", title="Reliability, test window")
    ax.legend(loc="upper left", fontsize="small")
    counts.set(xlabel="Predicted win probability", ylabel="Examples")
    return _save(fig, path)
