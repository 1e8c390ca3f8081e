"""The gate against the generator's signal knob: no signal is never promoted, a weak but real
signal only once the interval over opportunities says so.

Examples from the project's generator with the features computed in memory
(`tests.support.training_data`), trained as `crm train` does (search_size 8, seed 42) without
MLflow: `TrainingReport.skill_check` is the gate's skill test of the registered candidate, the
same one `registry.promote` applies. Measured (Brier skill of the registered model, 95% interval):

| data (seed 42)          | registered | Brier vs base rate | Brier skill               |
|-------------------------|------------|--------------------|---------------------------|
| signal 0, 8,800         | xgboost    | 0.2318 vs 0.2315   | -0.1% [-0.3%, +0.1%]      |
| signal 0.3, 8,800       | xgboost    | 0.2312 vs 0.2317   | +0.2% [-0.7%, +1.2%]      |
| signal 0.3, 30,000      | xgboost    | 0.2314 vs 0.2339   | +1.1% [+0.5%, +1.7%]      |
| default (1), 8,800      | xgboost    | 0.2047 vs 0.2340   | +12.5% [+9.0%, +16.1%]    |
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from tests.support.training_data import generator_examples
from training.config import TrainingConfig
from training.run import TrainingReport, train

MARGIN: float = Settings.model_fields["gate_skill_margin"].default


def trained(opportunities: int, signal: float, home: Path) -> TrainingReport:
    examples = generator_examples(opportunities, seed=42, signal=signal)
    return train(
        Settings(home=home, _env_file=None), TrainingConfig(track=False), examples=examples
    )


def consistent(report: TrainingReport) -> bool:
    """The verdict is exactly "both skills above the margin, both intervals above 0"."""
    m = report.metrics[report.candidate]
    expected = all(
        m[name] >= MARGIN and m[f"{name}_low"] > 0 for name in ("brier_skill", "log_loss_skill")
    )
    assert report.skill_check is not None
    return report.skill_check.passed is expected


def test_no_signal_is_never_promoted_and_calibration_does_no_harm(tmp_path: Path) -> None:
    report = trained(8800, 0.0, tmp_path)
    assert report.skill_check is not None and not report.skill_check.passed
    assert report.skill_check.reason.startswith("no skill: Brier ")
    assert "Brier skill" in report.skill_check.reason and consistent(report)
    for name in ("baseline", "xgboost"):
        m = report.metrics[name]
        assert abs(m["auc"] - 0.5) < 0.05 and not m["brier_skill_low"] > 0, (name, m)
        # the calibrator chosen on validation does not make the test log loss worse
        assert m["log_loss"] <= m["uncalibrated_log_loss"] + 0.002, (name, m)


@pytest.mark.parametrize(("opportunities", "promoted"), [(8800, False), (30_000, True)])
def test_a_weak_signal_promotes_only_when_the_interval_says_so(
    opportunities: int, promoted: bool, tmp_path: Path
) -> None:
    report = trained(opportunities, 0.3, tmp_path)
    m = report.metrics[report.candidate]
    assert report.metrics["oracle"]["brier_skill"] > 0.015  # the signal is real, and weak
    assert report.skill_check is not None and consistent(report)
    assert report.skill_check.passed is promoted, report.skill_check.reason
    assert (m["brier_skill_low"] > 0) is promoted
