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
SKILLS = {"brier_skill": "Brier skill", "log_loss_skill": "log-loss skill"}


def metrics_table(summary: Mapping[str, Any]) -> Table:
    """Test-window metrics per model (baseline, XGBoost, oracle when known) and the base rate,
    with each model's skill over the base rate and its interval over opportunities."""
    table = Table(title="Test window (used once)")
    table.add_column("model")
    for name in MODEL_METRICS:
        table.add_column(name, justify="right")
    for label in SKILLS.values():
        table.add_column(f"{label} vs base rate", justify="right")
    metrics: Mapping[str, Mapping[str, float]] = summary["metrics"]
    registered = summary.get("candidate")
    for model_name, values in metrics.items():
        shown = f"{model_name} (registered)" if model_name == registered else model_name
        table.add_row(
            shown,
            *(_number(values.get(m)) for m in MODEL_METRICS),
            *(skill_text(values, name) for name in SKILLS),
        )
    reference = next(iter(metrics.values()), {})
    base = (
        "0.5000",
        _number(reference.get("base_rate_log_loss")),
        _number(reference.get("base_rate_brier")),
    )
    table.add_row("base rate", *base, "", "", "0", "0")
    return table


def skill_text(values: Mapping[str, Any], name: str) -> str:
    """`+12.3% [+10.1%, +14.2%]` (the skill and its interval), or what is known of it."""
    estimate, low, high = (values.get(k) for k in (name, f"{name}_low", f"{name}_high"))
    if estimate is None:
        return ""
    if low is None or high is None:
        return f"{estimate:+.1%}"
    return f"{estimate:+.1%} [{low:+.1%}, {high:+.1%}]"


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """The metrics table, the distance to the oracle, the data sizes, which candidate was
    registered and why, and the promotion decision."""
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
    selection = summary.get("selection")
    if selection:
        console.print(f"registered: {escape(selection['reason'])}")
    decision = summary.get("decision")
    check = summary.get("skill_check")
    if decision:
        verdict = "promoted to champion" if decision["promoted"] else "not promoted"
        candidate = f" ({decision['candidate']})" if decision.get("candidate") else ""
        # The reason can quote an exception, brackets and all: not rich markup.
        console.print(f"v{decision['version']}{candidate} {verdict}: {escape(decision['reason'])}")
        if not decision["promoted"] and decision.get("champion_version") is None:
            console.print("no champion: nothing is served until a model shows skill")
    elif check:  # not registered (track or register_model off): what the gate would see
        console.print(f"gate (not registered): {escape(check['reason'])}")
    if summary.get("run_id"):
        console.print(f"MLflow run {summary['run_id']}")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
