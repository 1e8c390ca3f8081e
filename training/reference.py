"""The training reference saved with every model run: what "no drift" means for that model.

Drift is measured against the champion's own training data, not against yesterday: a model
knows only what it was fitted on. Each training run logs, as MLflow artifacts of the run
(`REFERENCE_DIR`), a profile of its reference rows (per numeric feature the decile edges and
the share of rows in each bin, per categorical feature the share of each level; missing values
are a bin of their own), a sample of those rows (for the two-sample tests, KS and chi-square),
the model's probabilities for them, the calibrated probabilities it gave on its test window and
the training base rate (what the base-rate forecaster predicts, for realised performance).

The reference rows are the training snapshot's *open deals* with their features at its scoring
time, the population monitoring compares with (every later snapshot's open deals). The pooled
training examples are closed deals at every as-of day of the history: against them two
undrifted weeks of open deals differ structurally (measured: PSI 3.9 on `engage_month`, 4.2 on
the account profile, whose prospecting deals have no account yet, 0.30 on the scores), which
would raise an alarm every day. Training on given in-memory examples (no snapshot) falls back to
the training rows and says so (`population`). Monitoring (`monitoring/`) reads the reference
back through the champion's run and bins today's rows with the same edges (`numeric_shares`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from training.features import FeatureSpec

REFERENCE_DIR = "monitoring"
PROFILE_FILE = "reference.json"
FEATURES_FILE = "reference_features.parquet"
PREDICTIONS_FILE = "reference_predictions.parquet"  # the model's scores of the reference rows
TEST_FILE = "test_predictions.parquet"  # its calibrated probabilities on its test window
OPEN_DEALS, TRAINING_ROWS = "open deals at the training snapshot", "training examples"
PROBABILITY = "win_probability"
MISSING = "(missing)"
OTHER = "(other)"  # a categorical level the training rows never had
PROFILE_VERSION = 1


def numeric_edges(values: pd.Series, bins: int) -> list[float]:
    """Interior edges at the reference's quantiles k/bins (repeated ones merged): a bin per
    decile by default, so each holds about the same share of the training rows."""
    present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype="float64")
    if present.size == 0:
        return []
    quantiles = np.quantile(present, np.arange(1, bins) / bins)
    return [float(q) for q in np.unique(quantiles)]


def numeric_shares(values: pd.Series, edges: list[float]) -> list[float]:
    """Share of rows per bin: (-inf, e0], (e0, e1], ..., (e_last, inf), then missing."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    present = ~np.isnan(numbers)
    index = np.searchsorted(np.asarray(edges, dtype="float64"), numbers[present], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, float((~present).sum()))
    return [float(c) for c in counts / max(len(numbers), 1)]


def category_shares(values: pd.Series, levels: list[str]) -> dict[str, float]:
    """Share of each known level, of unknown levels together (`OTHER`) and of missing values."""
    text = values.astype("string")
    n = max(len(text), 1)
    counts = text.value_counts(dropna=True)
    shares = {level: float(counts.get(level, 0)) / n for level in levels}
    shares[OTHER] = float(counts[~counts.index.isin(levels)].sum()) / n
    shares[MISSING] = float(text.isna().sum()) / n
    return shares


def build_profile(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    probabilities: np.ndarray,
    *,
    base_rate: float,
    bins: int,
    lineage: dict[str, Any] | None = None,
    population: str = OPEN_DEALS,
    test_probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """The JSON profile of the reference rows `frame` and the model's `probabilities` for them."""
    numeric = {}
    for name in spec.numeric:
        edges = numeric_edges(frame[name], bins)
        numeric[name] = {"edges": edges, "shares": numeric_shares(frame[name], edges)}
    categorical = {
        name: {"levels": list(levels), "shares": category_shares(frame[name], list(levels))}
        for name, levels in spec.categorical.items()
    }
    p = pd.Series(probabilities, dtype="float64")
    p_edges = numeric_edges(p, bins)
    test = pd.Series(test_probabilities if test_probabilities is not None else [], dtype="float64")
    return {
        "version": PROFILE_VERSION,
        "population": population,
        "rows": len(frame),
        "bins": bins,
        "base_rate": float(base_rate),
        "snapshot": (lineage or {}).get("snapshot"),
        "numeric": numeric,
        "categorical": categorical,
        "predictions": {
            "rows": int(p.size),
            "edges": p_edges,
            "shares": numeric_shares(p, p_edges),
            "mean": float(p.mean()) if p.size else None,
        },
        "test_window": {
            "rows": int(test.size),
            "mean": float(test.mean()) if test.size else None,
        },
    }


def log_reference(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    probabilities: np.ndarray,
    *,
    base_rate: float,
    bins: int,
    sample_rows: int,
    seed: int,
    lineage: dict[str, Any] | None = None,
    population: str = OPEN_DEALS,
    test_probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Log the profile, a sample of the reference rows with their scores and the test
    probabilities to the active MLflow run (under `REFERENCE_DIR`); the profile."""
    profile = build_profile(
        frame,
        spec,
        probabilities,
        base_rate=base_rate,
        bins=bins,
        lineage=lineage,
        population=population,
        test_probabilities=test_probabilities,
    )
    sample = frame[spec.columns].copy()
    sample[PROBABILITY] = np.asarray(probabilities, dtype="float64")
    if len(sample) > sample_rows:
        sample = sample.sample(n=sample_rows, random_state=seed)
    for name in spec.categorical:  # one Parquet type per column, whatever pandas inferred
        sample[name] = sample[name].astype("string")
    profile["sample_rows"] = len(sample)
    mlflow.log_dict(profile, f"{REFERENCE_DIR}/{PROFILE_FILE}")
    with tempfile.TemporaryDirectory(prefix="crm-reference-") as tmp:
        folder = Path(tmp)
        sample = sample.reset_index(drop=True)
        sample[spec.columns].to_parquet(folder / FEATURES_FILE, index=False)
        sample[[PROBABILITY]].to_parquet(folder / PREDICTIONS_FILE, index=False)
        test = test_probabilities if test_probabilities is not None else np.array([])
        pd.DataFrame({PROBABILITY: np.asarray(test, dtype="float64")}).to_parquet(
            folder / TEST_FILE, index=False
        )
        for name in (FEATURES_FILE, PREDICTIONS_FILE, TEST_FILE):
            mlflow.log_artifact(str(folder / name), artifact_path=REFERENCE_DIR)
    return profile
