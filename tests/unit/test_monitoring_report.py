"""The report's pure parts: which served rows are judged, the breach lines the alert carries,
and the figures logged to MLflow."""

from __future__ import annotations

import pandas as pd

from monitoring.drift import CHI_SQUARE, KS, NUMERIC, PREDICTION, Drift
from monitoring.run import breaches, served_pairs, served_window
from monitoring.tracking import metrics_of


def drift(name: str, psi: float, drifted: bool, judged: bool = True) -> Drift:
    return Drift(name, NUMERIC, psi, KS, 1e-9 if drifted else 0.5, drifted, {}, {}, judged)


def test_the_served_window_is_the_days_that_end_on_the_snapshot() -> None:
    log = pd.DataFrame(
        {
            "served_at": pd.to_datetime(
                ["2017-12-03 23:00", "2017-12-04 00:00", "2017-12-10 12:00", "2017-12-11 00:00"],
                utc=True,
            ),
            "opportunity_id": ["A", "B", "C", "D"],
            "model_version": ["1", "1", "2", "2"],
            "probability": [0.1, 0.2, 0.3, 0.4],
        }
    )
    assert served_window(log, "2017-12-10", 7)["opportunity_id"].tolist() == ["B", "C"]
    pairs = served_pairs(log)
    assert pairs["source"].unique().tolist() == ["served"]
    assert pairs["predicted_at"].tolist() == log["served_at"].tolist()


def test_breach_lines_say_what_drifted_and_leave_the_rest_out() -> None:
    features = [drift("account_profile__revenue", 1.04, True), drift("x__days_open", 0.01, False)]
    score = Drift(
        "win_probability", PREDICTION, 0.42, KS, 1e-50, True, {"mean": 0.7}, {"mean": 0.76}
    )
    quality = {
        "breached": True,
        "score": 0.8,
        "drop": 0.18,
        "reference_snapshot": "2017-12-03",
        "reference_score": 0.98,
    }
    served = [Drift("product_profile__series", CHI_SQUARE, 2.7, CHI_SQUARE, 0.0, True, {}, {})]
    lines = breaches(features, score, quality, served)
    assert lines == [
        "features: account_profile__revenue drifted (PSI 1.040, ks p=1e-09)",
        "served features: product_profile__series drifted (PSI 2.700, chi_square p=0)",
        "scores: win_probability drifted (PSI 0.420, mean 0.7 -> 0.76)",
        "data quality: score 0.8 is 0.18 below the training snapshot 2017-12-03's 0.98",
    ]
    assert breaches(features[1:], None, quality | {"breached": False}, None) == []


def test_the_figures_logged_to_mlflow() -> None:
    report = {
        "rows": 1400,
        "alarm": True,
        "drifted_features": ["a__x"],
        "features": [
            drift("a__x", 1.5, True).to_dict(),
            drift("daily__y", 8.0, False, judged=False).to_dict(),
        ],
        "prediction": {"psi": 0.42},
        "quality": {"score": 0.98},
        "model": {"version": "1"},
        "performance": {
            "by_version": [
                {"source": "batch", "model_version": "1", "pairs": 10, "auc": None}
                | {"brier": 0.2, "base_rate_brier": 0.25, "brier_skill": 0.2, "ece": 0.05},
                {"source": "batch", "model_version": "0", "pairs": 5, "auc": 0.6}
                | {"brier": 0.3, "base_rate_brier": 0.25, "brier_skill": -0.2, "ece": 0.1},
            ]
        },
    }
    metrics = metrics_of(report)
    assert metrics["monitor_psi_max_judged"] == 1.5  # the reported-only feature left out
    assert metrics["monitor_psi.daily__y"] == 8.0 and metrics["monitor_alarm"] == 1.0
    assert metrics["realised_batch_brier_skill"] == 0.2  # the champion's version only
    assert "realised_batch_auc" not in metrics  # unknown (one outcome): not logged
