"""Training runs and the champion/challenger pair, read from MLflow with a plain client.

The tracking URI comes from `Settings` (SQLite under CRM_HOME locally, the MLflow server on the
stack). Nothing is created: a missing local database means nothing was trained yet.

Each run trains two candidates (baseline and XGBoost) and registers the one that won on
validation (its `candidate` tag); the registered version's numbers are that candidate's. Every
model is shown against the base rate (always predicting the training win rate): a model without
skill over it is worse than a constant, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from infra.settings import Settings
from serving.explorer.errors import NoData, ServiceDown
from training.models import BASELINE, XGBOOST
from training.registry import CHALLENGER, CHAMPION, DOES_NOT_EXIST
from training.tracking import EXPERIMENT

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

ALIASES = (CHAMPION, CHALLENGER)
CANDIDATES = (BASELINE, XGBOOST)
# Test-window metrics of a run's registered candidate, in the order the page shows them.
CANDIDATE_METRICS: dict[str, str] = {
    "auc": "AUC (higher is better)",
    "brier": "Brier (lower is better)",
    "log_loss": "log loss (lower is better)",
    "brier_skill": "Brier skill vs base rate (higher is better)",
    "brier_skill_low": "Brier skill, interval low",
    "brier_skill_high": "Brier skill, interval high",
    "log_loss_skill": "log-loss skill vs base rate (higher is better)",
    "log_loss_skill_low": "log-loss skill, interval low",
    "log_loss_skill_high": "log-loss skill, interval high",
    "base_rate_brier": "base-rate Brier",
    "base_rate_log_loss": "base-rate log loss",
    "ece": "ECE (lower is better)",
    "accuracy": "accuracy",
}
# Columns of the runs table: both candidates' test AUC, Brier and Brier skill.
METRICS: dict[str, str] = {
    f"{model}_test_{name}": f"{model} {name.replace('_', ' ')}"
    for model in CANDIDATES
    for name in ("auc", "brier", "brier_skill")
} | {"xgboost_test_base_rate_brier": "base-rate Brier"}
PLOTS = {
    "roc": "plots/roc.png",
    "calibration": "plots/calibration.png",
    "reliability": "plots/reliability.png",
}
IMPORTANCE_PLOT = "plots/feature_importance.png"


@dataclass(frozen=True)
class AliasedVersion:
    alias: str
    version: str
    run_id: str
    tags: dict[str, str]


def tracking_client(settings: Settings, timeout: float = 3.0) -> MlflowClient:
    """A client for the profile's tracking store, after checking that it is there."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
        except httpx.HTTPError as exc:
            raise ServiceDown(
                f"The MLflow server at {uri} is not reachable ({type(exc).__name__}): start the "
                "stack with `make stack-up`."
            ) from exc
    elif uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise NoData(
            f"No MLflow database at {uri.removeprefix('sqlite:///')}: nothing trained yet. Run "
            "`make train` (after `make pipeline`'s earlier steps)."
        )
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def runs_frame(client: MlflowClient, max_results: int = 200) -> pd.DataFrame:
    """Training runs, newest first, with lineage tags and the test metrics."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise NoData(f"No MLflow experiment {EXPERIMENT!r} yet: run `make train`.")
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=max_results
    )
    if not runs:
        raise NoData(f"The experiment {EXPERIMENT!r} has no runs yet: run `make train`.")
    rows = []
    for run in runs:
        tags = run.data.tags
        rows.append(
            {
                "run_id": run.info.run_id,
                "started": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
                "status": run.info.status,
                "snapshot": tags.get("snapshot", ""),
                "model_version": tags.get("model_version", ""),
                "candidate": tags.get("candidate", XGBOOST),
                "promoted": tags.get("promoted", ""),
                "promotion_outcome": tags.get("promotion_outcome", ""),
                **{name: run.data.metrics.get(name) for name in METRICS},
            }
        )
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", range(len(frame), 0, -1))  # 1 = the oldest run
    return frame


def aliased_versions(client: MlflowClient, model_name: str) -> dict[str, AliasedVersion]:
    """The versions behind `champion` and `challenger` (an alias not set is left out).

    No registered model yet is `NoData`; a registry that cannot be read is `ServiceDown`, never
    "no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except (MlflowException, OSError) as exc:
        if getattr(exc, "error_code", None) == DOES_NOT_EXIST:
            raise NoData(f"No registered {model_name} yet: run `make train`.") from exc
        raise ServiceDown(
            f"The model registry at {client.tracking_uri} could not be read ({exc}): on the "
            "stack profile check MLflow with `make stack-status`."
        ) from exc
    found: dict[str, AliasedVersion] = {}
    for alias in ALIASES:
        number = (model.aliases or {}).get(alias)
        if number is None:
            continue
        version = client.get_model_version(model_name, str(number))
        found[alias] = AliasedVersion(
            alias, str(version.version), str(version.run_id), dict(version.tags)
        )
    if not found:
        raise NoData(f"No version of {model_name} carries an alias yet: run `make train`.")
    return found


def candidate_of(tags: dict[str, str]) -> str:
    """Which candidate a run (or version) registered; runs from before the gate: XGBoost."""
    return tags.get("candidate") or XGBOOST


@dataclass(frozen=True)
class Status:
    """What the page says first: is something served, and does it beat the base rate?"""

    level: str  # "success", "warning" or "error"
    message: str


def champion_status(
    versions: dict[str, AliasedVersion],
    run_metrics: dict[str, dict[str, float]],
    margin: float,
) -> Status:
    """Plain words on the champion: none, one without skill, or one with skill (and how much).

    `run_metrics`: each aliased version's run metrics by alias; `margin`: the gate's minimum skill.
    """
    champion = versions.get(CHAMPION)
    if champion is None:
        latest = versions.get(CHALLENGER)
        why = ""
        if latest is not None:
            reason = latest.tags.get("promotion_reason", "")
            why = f" The latest version, v{latest.version} ({candidate_of(latest.tags)}), " + (
                f"was not promoted: {reason}" if reason else "has no promotion decision."
            )
        return Status(
            "error",
            "**No champion.** No model has shown skill over the base rate, so nothing is "
            f"served (the scorer stays not ready).{why}",
        )
    metrics = run_metrics.get(CHAMPION, {})
    kind = candidate_of(champion.tags)
    skill = {n: metrics.get(f"{kind}_test_{n}") for n in ("brier_skill", "brier_skill_low")}
    skill |= {n: metrics.get(f"{kind}_test_{n}") for n in ("log_loss_skill", "log_loss_skill_low")}
    if any(value is None for value in skill.values()):
        return Status(
            "warning",
            f"**Champion v{champion.version} ({kind}) was promoted before the skill gate**: its "
            "run logged no skill over the base rate. Train again (`make train`) to check it.",
        )
    shown = (
        f"Brier skill {skill['brier_skill']:+.1%} (interval from {skill['brier_skill_low']:+.1%}), "
        f"log-loss skill {skill['log_loss_skill']:+.1%} (from {skill['log_loss_skill_low']:+.1%})"
    )
    has_skill = all(
        (skill[name] or 0.0) >= margin and (skill[f"{name}_low"] or 0.0) > 0.0
        for name in ("brier_skill", "log_loss_skill")
    )
    if not has_skill:
        return Status(
            "error",
            f"**Champion v{champion.version} ({kind}) has no skill over the base rate** on its "
            f"test window: {shown}. It is served but does no better than a constant.",
        )
    return Status("success", f"**Champion v{champion.version} ({kind})**: {shown}.")


def run_metrics(
    client: MlflowClient, versions: dict[str, AliasedVersion]
) -> dict[str, dict[str, float]]:
    """Each aliased version's training-run metrics, by alias."""
    return {alias: dict(client.get_run(v.run_id).data.metrics) for alias, v in versions.items()}


def base_rate_frame(client: MlflowClient, version: AliasedVersion) -> pd.DataFrame:
    """One version's run: every model (baseline, XGBoost, oracle) against the base rate."""
    metrics = client.get_run(version.run_id).data.metrics
    registered = candidate_of(version.tags)
    rows = []
    for model in (*CANDIDATES, "oracle"):
        if f"{model}_test_brier" not in metrics:
            continue
        rows.append(
            {
                "model": f"{model} (registered)" if model == registered else model,
                "Brier": metrics.get(f"{model}_test_brier"),
                "log loss": metrics.get(f"{model}_test_log_loss"),
                "AUC": metrics.get(f"{model}_test_auc"),
                "Brier skill": metrics.get(f"{model}_test_brier_skill"),
                "Brier skill low": metrics.get(f"{model}_test_brier_skill_low"),
                "Brier skill high": metrics.get(f"{model}_test_brier_skill_high"),
                "log-loss skill": metrics.get(f"{model}_test_log_loss_skill"),
                "log-loss skill low": metrics.get(f"{model}_test_log_loss_skill_low"),
                "log-loss skill high": metrics.get(f"{model}_test_log_loss_skill_high"),
            }
        )
    reference = f"{registered}_test_"
    rows.append(
        {
            "model": "base rate (training win rate)",
            "Brier": metrics.get(f"{reference}base_rate_brier"),
            "log loss": metrics.get(f"{reference}base_rate_log_loss"),
            "AUC": 0.5,
            "Brier skill": 0.0,
            "log-loss skill": 0.0,
        }
    )
    return pd.DataFrame(rows)


def versions_frame(
    client: MlflowClient, model_name: str, aliased: dict[str, AliasedVersion]
) -> pd.DataFrame:
    """Every registered version with its aliases and the gate's decision.

    (`search_model_versions` leaves aliases out, hence the `aliased_versions` result.)
    """
    aliases: dict[str, list[str]] = {}
    for alias, version in aliased.items():
        aliases.setdefault(version.version, []).append(alias)
    versions = client.search_model_versions(f"name='{model_name}'")
    rows = [
        {
            "version": int(v.version),
            "aliases": ", ".join(aliases.get(str(v.version), [])),
            "run_id": v.run_id,
            "candidate": candidate_of(dict(v.tags)),
            "promoted": v.tags.get("promoted", ""),
            "promotion_reason": v.tags.get("promotion_reason", ""),
        }
        for v in versions
    ]
    columns = ["version", "aliases", "candidate", "run_id", "promoted", "promotion_reason"]
    return pd.DataFrame(rows, columns=columns).sort_values("version", ascending=False)


def compare_frame(client: MlflowClient, versions: dict[str, AliasedVersion]) -> pd.DataFrame:
    """Test metrics side by side, one column per alias (each on its own test window): the
    registered candidate's numbers, skills over the base rate included."""
    table: dict[str, dict[str, Any]] = {}
    for alias, version in versions.items():
        metrics = client.get_run(version.run_id).data.metrics
        kind = candidate_of(version.tags)
        table[f"{alias} (v{version.version}, {kind})"] = {
            label: metrics.get(f"{kind}_test_{name}") for name, label in CANDIDATE_METRICS.items()
        }
    return pd.DataFrame(table).rename_axis("metric").reset_index()


def artifact_file(
    client: MlflowClient, run_id: str, artifact_path: str, destination: Path
) -> Path | None:
    """Download one artifact of a run (e.g. `plots/roc.png`); None if the run has none."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    folder, _, name = artifact_path.rpartition("/")
    if name not in {a.path.rpartition("/")[2] for a in client.list_artifacts(run_id, folder)}:
        return None
    destination.mkdir(parents=True, exist_ok=True)
    try:
        local = download_artifacts(
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(destination),
            tracking_uri=client.tracking_uri,
        )
    except (MlflowException, OSError) as exc:
        raise ServiceDown(
            f"Artifact {artifact_path} of run {run_id} could not be downloaded ({exc}): on the "
            "stack profile the artifact store is S3, check it with `make stack-status`."
        ) from exc
    return Path(local)
