"""The terminal summary is rendered from the flow's JSON-able result alone."""

from __future__ import annotations

import json

from rich.console import Console

from training.summary import print_summary


def _metrics(auc: float, brier: float, **extra: float) -> dict[str, float]:
    return {"auc": auc, "log_loss": 0.6, "brier": brier, "accuracy": 0.7, "ece": 0.02, **extra}


SUMMARY = {
    "run_id": "abc123",
    "model_version": "2",
    "decision": {
        "version": "2",
        "promoted": False,
        "reason": "champion v1 cannot score this feature set (lacks ['x']); champion kept.",
        "champion_version": "1",
        "champion_auc": None,
        "champion_brier": None,
    },
    "metrics": {
        "baseline": _metrics(0.70, 0.21, base_rate_brier=0.2345),
        "xgboost": _metrics(
            0.75,
            0.19,
            base_rate_brier=0.2345,
            auc_ratio_to_oracle=0.987,
            brier_ratio_to_oracle=1.02,
        ),
        "oracle": _metrics(0.76, 0.186),
    },
    "split": {"train_examples": 900, "valid_examples": 100, "test_examples": 250},
    "calibration": "platt",
    "n_features": 58,
    "wall_time_s": 12.34,
}


def _render(summary: dict) -> str:
    console = Console(record=True, width=120)
    print_summary(json.loads(json.dumps(summary)), console)
    return console.export_text()


def test_every_part_of_the_report_is_shown() -> None:
    shown = _render(SUMMARY)
    lines = {line.split("│")[1].strip(): line for line in shown.splitlines() if "│" in line}
    assert {"baseline", "xgboost", "oracle", "base rate"} <= set(lines)
    assert "0.7500" in lines["xgboost"] and "0.1900" in lines["xgboost"]
    assert "0.2345" in lines["base rate"]
    assert "XGBoost / oracle: AUC x0.987, Brier x1.020" in shown
    assert "calibration: platt; features: 58; examples train/valid/test: 900/100/250" in shown
    assert "wall time 12.3 s" in shown
    # brackets in a reason are text, not rich markup
    assert "v2 not promoted: champion v1 cannot score this feature set (lacks ['x'])" in shown
    assert "MLflow run abc123" in shown


def test_an_untracked_run_on_real_data_shows_what_it_has() -> None:
    """No truth (no oracle), no MLflow run and so no decision."""
    summary = {**SUMMARY, "run_id": None, "model_version": None, "decision": None}
    summary["metrics"] = {
        "baseline": _metrics(0.70, 0.21, base_rate_brier=0.2345),
        "xgboost": _metrics(0.75, 0.19, base_rate_brier=0.2345),
    }
    shown = _render(summary)
    assert "xgboost" in shown and "oracle" not in shown
    assert "promoted" not in shown and "MLflow run" not in shown
