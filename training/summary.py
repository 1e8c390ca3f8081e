"""The training report for a terminal, from the JSON-able summary the `train` flow returns.

Presentation stays out of the flow: the flow returns `TrainingReport.to_dict()`, and whoever shows
it (the `crm train` command) calls `print_summary` on that dict, as it arrives from a local flow
run or from a deployment's stored result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

MODEL_METRICS = ("auc", "log_loss", "brier", "accuracy", "ece")


def metrics_table(summary: Mapping[str, Any]) -> Table:
    """Test-window metrics per model (baseline, XGBoost, oracle when known) and the base rate."""
    table = Table(title="Test window (used once)")
    table.add_column("model")
    for name in MODEL_METRICS:
        table.add_column(name, justify="right")
    metrics: Mapping[str, Mapping[str, float]] = summary["metrics"]
    for model_name, values in metrics.items():
        table.add_row(model_name, *(_number(values.get(m)) for m in MODEL_METRICS))
    xgb = metrics["xgboost"]
    table.add_row("base rate", "0.5000", "", _number(xgb.get("base_rate_brier")), "", "")
    return table


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """The metrics table, the distance to the oracle, the data sizes and the promotion decision."""
    console = console or Console()
    console.print(metrics_table(summary))
    xgb = summary["metrics"]["xgboost"]
    if "auc_ratio_to_oracle" in xgb:
        console.print(
            f"XGBoost / oracle: AUC x{xgb['auc_ratio_to_oracle']:.3f}, "
            f"Brier x{xgb['brier_ratio_to_oracle']:.3f}"
        )
    split = summary["split"]
    console.print(
        f"calibration: {summary['calibration']}; features: {summary['n_features']}; "
        f"examples train/valid/test: {split['train_examples']}/{split['valid_examples']}/"
        f"{split['test_examples']}; wall time {summary['wall_time_s']:.1f} s"
    )
    decision = summary.get("decision")
    if decision:
        verdict = "promoted to champion" if decision["promoted"] else "not promoted"
        # The reason can quote an exception, brackets and all: not rich markup.
        console.print(f"v{decision['version']} {verdict}: {escape(decision['reason'])}")
    if summary.get("run_id"):
        console.print(f"MLflow run {summary['run_id']}")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
