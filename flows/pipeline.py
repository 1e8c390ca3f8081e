"""Prefect flow `crm-pipeline`: land → validate (gate) → features → materialise → train/promote
→ batch-score the open deals (with the champion, if there is one).

Each step is the stage's own flow run as a subflow with a timeout (retries live inside the steps:
the lake retries its own calls and tasks retry only transient errors, see flows/retries.py); the
validation gate stops the run before anything downstream touches a bad snapshot. The run ends
with a summary published as a Prefect markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.features import features
from flows.land import land
from flows.materialize import materialize_flow
from flows.runs import Steps, one_run_at_a_time
from flows.score import score_if_champion
from flows.train import completed, train
from flows.validate import validate
from infra.runtime import quiet_user_errors

NO_CHAMPION = "No champion"
# Each model against the base rate, in the run summary.
SKILL_KEYS = (
    "base_rate_brier",
    "base_rate_log_loss",
    "brier_skill",
    "brier_skill_low",
    "brier_skill_high",
    "log_loss_skill",
    "log_loss_skill_low",
    "log_loss_skill_high",
)


@flow(name="crm-pipeline")
def pipeline(
    source: str = "synthetic",
    snapshot: str | None = None,
    opportunities: int | None = None,
    seed: int = 42,
    threshold: float | None = None,
    signal: float | None = None,
) -> dict[str, Any]:
    """The whole path for one snapshot; returns (and publishes) the run summary.

    `threshold`: the minimum quality score (default: the `CRM_QUALITY_THRESHOLD` setting).
    `signal` (synthetic source only): the planted signal's strength, 0 to 1 (default 1).
    A model the gate does not promote ends the run completed, in a state named "No champion"
    (or "Not promoted" when an earlier champion stays) whose message is the gate's reason.
    """
    quiet_user_errors()
    logger = get_run_logger()
    steps = Steps(logger)
    with one_run_at_a_time():
        landed = steps.run(
            "land",
            lambda: land.with_options(timeout_seconds=900)(
                source=source,
                snapshot=snapshot,
                opportunities=opportunities,
                seed=seed,
                signal=signal,
            ),
        )
        snapshot = landed["snapshot"]
        validated = steps.run(
            "validate",
            lambda: validate.with_options(timeout_seconds=900)(
                snapshot=snapshot, threshold=threshold
            ),
        )
        feature_rows = steps.run(
            "features", lambda: features.with_options(timeout_seconds=1800)(snapshot=snapshot)
        )
        materialized = steps.run(
            "materialize", lambda: materialize_flow.with_options(timeout_seconds=1800)()
        )
        trained = steps.run(
            "train", lambda: train.with_options(timeout_seconds=3600)(snapshot=snapshot)
        )
        scored = steps.run("score", lambda: score_if_champion(snapshot))
    summary = {
        "snapshot": snapshot,
        "source": landed["source"],
        "rows": landed["rows"],
        "quality_score": validated["score"],
        "quality_passed": validated["passed"],
        "feature_rows": feature_rows,
        "materialized": materialized,
        "metrics": {
            model: {k: trained["metrics"][model].get(k) for k in ("auc", "brier", "log_loss")}
            for model in trained["metrics"]
        },
        "skill": {
            model: {k: trained["metrics"][model].get(k) for k in SKILL_KEYS}
            for model in trained["metrics"]
        },
        "candidate": trained.get("candidate"),
        "selection": (trained.get("selection") or {}).get("reason"),
        "model": trained.get("decision") or {},
        "scored": scored,
        "seconds": steps.timings(),
    }
    summary["champion"] = champion_line(summary["model"])
    create_markdown_artifact(
        key="crm-pipeline-summary",
        markdown=summary_markdown(summary),
        description=f"crm-pipeline run for snapshot {snapshot}",
    )
    decision = summary["model"]
    if decision and not decision.get("promoted"):
        logger.warning("%s", summary["champion"])
        name = NO_CHAMPION if decision.get("champion_version") is None else "Not promoted"
        return completed(summary, name, summary["champion"])
    return summary


def champion_line(decision: dict[str, Any]) -> str:
    """One line on the registry after this run: the new champion, or why there is none."""
    if not decision:
        return "no model registered (training ran without the registry)"
    version, candidate = decision.get("version"), decision.get("candidate") or "model"
    if decision.get("promoted"):
        return f"champion: v{version} ({candidate}) — {decision.get('reason')}"
    if decision.get("champion_version") is None:
        return f"no champion: {decision.get('reason')}"
    return (
        f"not promoted: v{version} ({candidate}); champion v{decision['champion_version']} "
        f"stays — {decision.get('reason')}"
    )


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as a small Markdown report (the Prefect artifact's body)."""
    skill = summary.get("skill", {})
    base_rate = {
        key: next((m[key] for m in skill.values() if m.get(key) is not None), None)
        for key in ("base_rate_brier", "base_rate_log_loss")
    }
    lines = [
        f"# crm-pipeline — snapshot {summary['snapshot']}",
        "",
        f"Source `{summary['source']}`; quality score **{summary['quality_score']:.3f}**"
        f" ({'passed' if summary['quality_passed'] else 'failed'}).",
        "",
        "| table | rows |",
        "|---|---:|",
        *(f"| {table} | {rows:,} |" for table, rows in summary["rows"].items()),
        "",
        "| model | ROC AUC | Brier | log loss | Brier skill vs base rate |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {model} | {_fmt(m.get('auc'))} | {_fmt(m.get('brier'))} |"
            f" {_fmt(m.get('log_loss'))} | {_skill(skill.get(model, {}))} |"
            for model, m in summary["metrics"].items()
        ),
        f"| base rate | 0.5000 | {_fmt(base_rate['base_rate_brier'])} |"
        f" {_fmt(base_rate['base_rate_log_loss'])} | 0 |",
        "",
        *([f"Registered: {summary['selection']}.", ""] if summary.get("selection") else []),
        f"**{summary.get('champion') or champion_line(summary['model'])}**",
        "",
        scored_line(summary.get("scored") or {}),
        "",
        "Seconds per step: "
        + ", ".join(f"{name} {secs}" for name, secs in summary["seconds"].items()),
    ]
    return "\n".join(lines)


def scored_line(scored: dict[str, Any]) -> str:
    """What the batch scoring step did: how many open deals, with which model, or why not."""
    if "rows" in scored:
        return (
            f"Batch scores: {scored['rows']:,} open deals of {scored['snapshot']} scored with "
            f"{scored['model']} into the lake's predictions/."
        )
    return f"Batch scores: {scored.get('skipped', 'not run')}."


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def _skill(values: dict[str, Any]) -> str:
    """`+12.3% [+10.1%, +14.2%]`, or what is known of it."""
    estimate, low, high = (
        values.get(k) for k in ("brier_skill", "brier_skill_low", "brier_skill_high")
    )
    if not isinstance(estimate, int | float):
        return "–"
    if isinstance(low, int | float) and isinstance(high, int | float):
        return f"{estimate:+.1%} [{low:+.1%}, {high:+.1%}]"
    return f"{estimate:+.1%}"
