"""Realised performance: earlier predictions joined with the outcomes later snapshots show.

A deal scored open on day D (batch scores `predictions/snapshot=D/`, and the served log when
there is one) that a later snapshot shows Won or Lost gives one (prediction, outcome) pair.
Per source, model version and week of the prediction: AUC, Brier, the Brier of the base-rate
forecaster (the model's own training win rate, saved in its reference) and the Brier skill
1 - Brier / base-rate Brier, and calibration (mean predicted vs observed, ECE). A deal scored on
several days counts once per day: each is a forecast that was made and can be judged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from feature_repo.entities import OPPORTUNITY_ID
from infra.lake import Lake
from infra.layout import PREDICTIONS, manifests_prefix, predictions_key, predictions_manifest_key
from ingestion.tables import SALES_PIPELINE, STAGES_CLOSED
from training.metrics import expected_calibration_error, reliability_curve

WON = STAGES_CLOSED[0]
BATCH, SERVED = "batch", "served"
# The columns a prediction source is brought to before the join.
PAIR_COLUMNS = (OPPORTUNITY_ID, "source", "model_version", "predicted_at", "probability")


def batch_predictions(lake: Lake, before: str) -> pd.DataFrame:
    """Every committed batch score of a snapshot earlier than `before`."""
    snapshots = [
        s
        for s in lake.list_partitions(manifests_prefix(PREDICTIONS), "snapshot")
        if s < before and lake.exists(predictions_manifest_key(s))
    ]
    frames = []
    for snapshot in snapshots:
        table = lake.read_published(predictions_manifest_key(snapshot), predictions_key(snapshot))
        frame = table.select([OPPORTUNITY_ID, "model_version", "as_of", "win_probability"])
        frames.append(frame.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(PAIR_COLUMNS))
    out = pd.concat(frames, ignore_index=True).rename(
        columns={"as_of": "predicted_at", "win_probability": "probability"}
    )
    out["source"] = BATCH
    return out[list(PAIR_COLUMNS)]


def outcomes(lake: Lake, snapshot: str) -> pd.DataFrame:
    """Deals closed as of `snapshot`: id, label (Won = 1) and close date."""
    from validation.published import read_validated

    pipeline = read_validated(lake, snapshot)[SALES_PIPELINE].to_pandas()
    closed = pipeline[pipeline["deal_stage"].isin(STAGES_CLOSED)]
    return pd.DataFrame(
        {
            OPPORTUNITY_ID: closed[OPPORTUNITY_ID].astype(str).to_numpy(),
            "label": (closed["deal_stage"] == WON).astype("int64").to_numpy(),
            "closed_on": pd.to_datetime(closed["close_date"], utc=True).to_numpy(),
        }
    )


def join_outcomes(predictions: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
    """Predictions of deals that closed after they were made, with their label."""
    pairs = predictions.merge(closed, on=OPPORTUNITY_ID, how="inner")
    predicted = pd.to_datetime(pairs["predicted_at"], utc=True).dt.normalize()
    return pairs[pd.to_datetime(pairs["closed_on"], utc=True) >= predicted].reset_index(drop=True)


def scores(y: np.ndarray, p: np.ndarray, base_rate: float | None) -> dict[str, Any]:
    """The metrics of one group of pairs (AUC needs both outcomes; skill needs a base rate)."""
    out: dict[str, Any] = {
        "pairs": len(y),
        "won": int(y.sum()),
        "observed_rate": round(float(y.mean()), 6),
        "mean_predicted": round(float(p.mean()), 6),
        "auc": round(float(roc_auc_score(y, p)), 6) if 0 < y.sum() < len(y) else None,
        "brier": round(float(brier_score_loss(y, p)), 6),
        "ece": round(expected_calibration_error(y, p), 6),
        "base_rate": base_rate,
        "base_rate_brier": None,
        "brier_skill": None,
    }
    if base_rate is not None:
        base = float(np.mean((y - base_rate) ** 2))
        out["base_rate_brier"] = round(base, 6)
        out["brier_skill"] = round(1.0 - out["brier"] / base, 6) if base > 0 else None
    return out


def realised_performance(
    lake: Lake,
    snapshot: str,
    base_rate_of: Callable[[str], float | None],
    served: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Predictions made before `snapshot` judged by its outcomes; `base_rate_of(version)` is a
    model version's training win rate. `served`: the served log brought to `PAIR_COLUMNS`."""
    predictions = batch_predictions(lake, snapshot)
    if served is not None and not served.empty:
        predictions = pd.concat([predictions, served[list(PAIR_COLUMNS)]], ignore_index=True)
    pairs = join_outcomes(predictions, outcomes(lake, snapshot))
    result: dict[str, Any] = {
        "outcomes_as_of": snapshot,
        "predictions": len(predictions),
        "pairs": len(pairs),
        "by_version": [],
        "by_week": [],
        "calibration": {},
    }
    if pairs.empty:
        return result
    pairs["model_version"] = pairs["model_version"].astype(str)
    pairs["week"] = (
        pd.to_datetime(pairs["predicted_at"], utc=True)
        .dt.tz_localize(None)
        .dt.to_period("W-SUN")
        .dt.start_time.dt.date.astype(str)
    )
    rates = {v: base_rate_of(v) for v in pairs["model_version"].unique()}
    for (source, version), group in pairs.groupby(["source", "model_version"], sort=True):
        y, p = group["label"].to_numpy(), group["probability"].to_numpy(dtype="float64")
        result["by_version"].append(
            {"source": source, "model_version": version} | scores(y, p, rates[version])
        )
        curve = reliability_curve(y, p)
        result["calibration"][f"{source} v{version}"] = {
            "predicted": [round(v, 6) for v in curve.predicted],
            "observed": [round(v, 6) for v in curve.observed],
            "counts": curve.counts,
        }
        for week, rows in group.groupby("week", sort=True):
            y, p = rows["label"].to_numpy(), rows["probability"].to_numpy(dtype="float64")
            result["by_week"].append(
                {"source": source, "model_version": version, "week": week}
                | scores(y, p, rates[version])
            )
    return result
