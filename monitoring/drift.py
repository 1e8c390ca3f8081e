"""Drift of the features, of the predicted probabilities and of the data-quality score.

Each feature of today's open deals is compared with the champion's training reference: PSI over
the reference's own bins (the effect size) and a two-sample test (is it more than noise?). A
feature has drifted when both say so: PSI >= `CRM_MONITOR_PSI_THRESHOLD` and the p-value below
`CRM_MONITOR_P_VALUE`. With thousands of rows a test finds negligible differences significant,
and with a few dozen a PSI is noisy; requiring both keeps the alarm for shifts that matter. The
scores are judged the same way against the probabilities the model gave on its test window; the
quality score against the one of the snapshot the champion was trained on.

Only features that describe *which deals* the model is asked about are judged: the deal's own
request features and the static profiles of its agent, account and product (the mix of
deals). The daily statistics of an entity (views tagged `grain: daily`) hold one value per
entity and day, shared by all of its deals, and move every day by construction: between two
undrifted weeks their per-deal PSI reached 8 (7 products: 7 values per day). They are reported
with the same statistics, never judged; a change they carry shows in the scores' drift and in
realised performance. So are the request features that name a calendar position
(`CALENDAR_FEATURES`): today's open deals were engaged in the last weeks, so their engagement
month rolls forward with the calendar (undrifted: PSI 0.13 after one week, 0.37 after two).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.feature_services import FULL_NAME_SEP, SCORING_VIEWS, full_name
from feature_repo.on_demand import opportunity_request_features
from infra.lake import Lake
from infra.settings import Settings
from monitoring.errors import MonitoringError
from monitoring.reference import Reference
from monitoring.stats import chi_square_p_value, ks_p_value, psi
from training.reference import category_shares, numeric_shares
from validation.report import read_history

NUMERIC, CATEGORICAL, PREDICTION = "numeric", "categorical", "prediction"
KS, CHI_SQUARE = "ks", "chi_square"
# Views whose values are per entity and day (feature_repo/features/stats.py tags them).
DAILY_VIEWS = frozenset(v.name for v in SCORING_VIEWS if v.tags.get("grain") == "daily")
# Request features whose value is a position in the calendar (the month a deal was engaged).
CALENDAR_FEATURES = frozenset(
    full_name(opportunity_request_features.name, name)
    for name in ("engage_month", "engage_quarter_end")
)


def is_judged(feature: str) -> bool:
    """Daily statistics and calendar positions are reported, not judged (see the module)."""
    view = feature.split(FULL_NAME_SEP, 1)[0]
    return view not in DAILY_VIEWS and feature not in CALENDAR_FEATURES


@dataclass(frozen=True)
class Drift:
    """One column's drift against the reference."""

    name: str
    kind: str  # numeric | categorical | prediction
    psi: float
    test: str  # ks | chi_square
    p_value: float | None
    drifted: bool  # judged, and over both thresholds
    reference: dict[str, Any]  # summary: mean and missing share, or the top levels' shares
    current: dict[str, Any]
    judged: bool = True  # False: reported only (a daily-statistics feature)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judged(psi_value: float, p_value: float | None, settings: Settings) -> bool:
    """Drifted: a large shift (PSI) that is not sampling noise (p-value)."""
    return (
        psi_value >= settings.monitor_psi_threshold
        and p_value is not None
        and p_value < settings.monitor_p_value
    )


def _numeric_summary(values: pd.Series) -> dict[str, Any]:
    numbers = pd.to_numeric(values, errors="coerce")
    mean = numbers.mean()
    return {
        "mean": None if pd.isna(mean) else round(float(mean), 6),
        "missing": round(float(numbers.isna().mean()), 6) if len(numbers) else None,
    }


def _top_levels(shares: dict[str, float], n: int = 5) -> dict[str, float]:
    return {k: round(v, 6) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:n]}


def feature_drift(reference: Reference, current: pd.DataFrame, settings: Settings) -> list[Drift]:
    """Every feature of the reference, drifted ones first (then by PSI)."""
    profile = reference.profile
    wanted = [*profile["numeric"], *profile["categorical"]]
    missing = [name for name in wanted if name not in current.columns]
    if missing:
        raise MonitoringError(
            f"Today's feature rows lack {missing}, which v{reference.version} was trained on: "
            "the feature service changed; retrain (`crm train`) before monitoring."
        )
    out = []
    for name, spec in profile["numeric"].items():
        value = psi(spec["shares"], numeric_shares(current[name], spec["edges"]))
        p = ks_p_value(reference.sample[name], current[name])
        out.append(
            Drift(
                name,
                NUMERIC,
                round(value, 6),
                KS,
                p,
                is_judged(name) and judged(value, p, settings),
                _numeric_summary(reference.sample[name]),
                _numeric_summary(current[name]),
                is_judged(name),
            )
        )
    for name, spec in profile["categorical"].items():
        shares = category_shares(current[name], spec["levels"])
        value = psi(list(spec["shares"].values()), [shares[k] for k in spec["shares"]])
        p = chi_square_p_value(reference.sample[name], current[name])
        out.append(
            Drift(
                name,
                CATEGORICAL,
                round(value, 6),
                CHI_SQUARE,
                p,
                is_judged(name) and judged(value, p, settings),
                _top_levels(spec["shares"]),
                _top_levels(shares),
                is_judged(name),
            )
        )
    return sorted(out, key=lambda d: (not d.drifted, not d.judged, -d.psi))


def prediction_drift(reference: Reference, probabilities: np.ndarray, settings: Settings) -> Drift:
    """Today's scores against the champion's scores of its reference rows."""
    spec = reference.profile["predictions"]
    current = pd.Series(probabilities, dtype="float64")
    value = psi(spec["shares"], numeric_shares(current, spec["edges"]))
    p = ks_p_value(reference.probabilities, current)
    return Drift(
        "win_probability",
        PREDICTION,
        round(value, 6),
        KS,
        p,
        judged(value, p, settings),
        _numeric_summary(reference.probabilities),
        _numeric_summary(current),
    )


def quality_drift(lake: Lake, snapshot: str, reference: Reference, settings: Settings) -> dict:
    """The snapshot's quality score against the champion's training snapshot's, and the
    history (reports/validation/history.json) for the chart."""
    history = read_history(lake)
    scores = {entry["snapshot"]: float(entry["score"]) for entry in history}
    score = scores.get(snapshot)
    baseline = scores.get(reference.snapshot or "")
    drop = None if score is None or baseline is None else round(baseline - score, 6)
    return {
        "snapshot": snapshot,
        "score": score,
        "reference_snapshot": reference.snapshot,
        "reference_score": baseline,
        "drop": drop,
        "threshold": settings.monitor_quality_drop,
        "breached": drop is not None and drop >= settings.monitor_quality_drop,
        "history": [{"snapshot": e["snapshot"], "score": e["score"]} for e in history],
    }
