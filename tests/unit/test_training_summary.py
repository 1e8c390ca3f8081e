"""The terminal summary is rendered from the flow's JSON-able result alone."""

from __future__ import annotations

import json

from rich.console import Console

from training.summary import print_summary


def _metrics(auc: float, brier: float, **extra: float) -> dict[str, float]:
    return {"auc": auc, "log_loss": 0.6, "brier": brier, "accuracy": 0.7, "ece": 0.02, **extra}


def _skill(brier: float, low: float, high: float) -> dict[str, float]:
    return {
        "brier_skill": brier,
        "brier_skill_low": low,
        "brier_skill_high": high,
        "log_loss_skill": brier * 0.8,
        "log_loss_skill_low": low * 0.8,
        "log_loss_skill_high": high * 0.8,
        "base_rate_brier": 0.2345,
        "base_rate_log_loss": 0.6612,
    }


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
        "candidate": "xgboost",
    },
    "candidate": "xgboost",
    "selection": {
        "winner": "xgboost",
        "reason": "xgboost won on validation: log loss 0.6017 vs baseline 0.6049 (-0.0032)",
    },
    "metrics": {
        "baseline": _metrics(0.70, 0.21, **_skill(0.104, 0.07, 0.14)),
        "xgboost": _metrics(
            0.75,
            0.19,
            auc_ratio_to_oracle=0.987,
            brier_ratio_to_oracle=1.02,
            **_skill(0.19, 0.15, 0.23),
        ),
        "oracle": _metrics(0.76, 0.186, **_skill(0.207, 0.17, 0.25)),
    },
    "split": {"train_examples": 900, "valid_examples": 100, "test_examples": 250},
    "calibration": "platt",
    "n_features": 58,
    "wall_time_s": 12.34,
}


def _render(summary: dict) -> str:
    console = Console(record=True, width=200)
    print_summary(json.loads(json.dumps(summary)), console)
    return console.export_text()


def test_every_part_of_the_report_is_shown() -> None:
    shown = _render(SUMMARY)
    lines = {line.split("│")[1].strip(): line for line in shown.splitlines() if "│" in line}
    assert {"baseline", "xgboost (registered)", "oracle", "base rate"} <= set(lines)
    assert "0.7500" in lines["xgboost (registered)"] and "0.1900" in lines["xgboost (registered)"]
    # each model against the base rate: its skill and the interval over opportunities
    assert "+19.0% [+15.0%, +23.0%]" in lines["xgboost (registered)"]
    assert "+10.4% [+7.0%, +14.0%]" in lines["baseline"]
    assert "0.2345" in lines["base rate"] and "0.6612" in lines["base rate"]
    assert "registered: xgboost won on validation: log loss 0.6017 vs baseline 0.6049" in shown
    assert "XGBoost / oracle: AUC x0.987, Brier x1.020" in shown
    assert "calibration: platt; features: 58; examples train/valid/test: 900/100/250" in shown
    assert "wall time 12.3 s" in shown
    # brackets in a reason are text, not rich markup
    assert "v2 (xgboost) not promoted: champion v1 cannot score this feature set (lacks ['x'])" in (
        shown
    )
    assert "no champion" not in shown  # v1 stays champion
    assert "MLflow run abc123" in shown


def test_an_untracked_run_on_real_data_shows_what_it_has() -> None:
    """No truth (no oracle), no MLflow run and so no decision."""
    summary = {**SUMMARY, "run_id": None, "model_version": None, "decision": None}
    summary["metrics"] = {
        "baseline": _metrics(0.70, 0.21, base_rate_brier=0.2345),
        "xgboost": _metrics(0.75, 0.19, base_rate_brier=0.2345),
    }
    summary["skill_check"] = {"passed": True, "reason": "skill: Brier 0.1900 vs base rate 0.2345"}
    shown = _render(summary)
    assert "xgboost" in shown and "oracle" not in shown
    assert "promoted" not in shown and "MLflow run" not in shown
    assert "gate (not registered): skill: Brier 0.1900 vs base rate 0.2345" in shown


def test_no_skill_and_no_champion_is_said_plainly() -> None:
    reason = (
        "no skill: Brier 0.2343 vs base rate 0.2315 (Brier skill -1.2% [95% -2.3%, +0.1%]; "
        "log-loss skill -0.9% [95% -1.8%, +0.1%]) — not promoted"
    )
    decision = {**SUMMARY["decision"], "version": "1", "champion_version": None, "reason": reason}
    shown = _render({**SUMMARY, "decision": decision})
    assert f"v1 (xgboost) not promoted: {reason}" in shown
    assert "no champion: nothing is served until a model shows skill" in shown
