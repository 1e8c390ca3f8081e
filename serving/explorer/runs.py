"""Training runs and the champion/challenger pair, read from MLflow with a plain client.

The tracking URI comes from `Settings` (SQLite under CRM_HOME locally, the MLflow server on the
stack). Nothing is created: a missing local database means nothing was trained yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from infra.settings import Settings
from serving.explorer.errors import NoData, ServiceDown
from training.registry import CHALLENGER, CHAMPION
from training.tracking import EXPERIMENT

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

ALIASES = (CHAMPION, CHALLENGER)
# Test-window metrics of the XGBoost model, in the order the page shows them.
METRICS: dict[str, str] = {
    "xgboost_test_auc": "AUC (higher is better)",
    "xgboost_test_brier": "Brier (lower is better)",
    "xgboost_test_log_loss": "log loss (lower is better)",
    "xgboost_test_ece": "ECE (lower is better)",
    "xgboost_test_accuracy": "accuracy",
    "baseline_test_auc": "baseline AUC",
    "baseline_test_brier": "baseline Brier",
}
PLOTS = {"roc": "plots/roc.png", "calibration": "plots/calibration.png"}
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
                "promoted": tags.get("promoted", ""),
                **{name: run.data.metrics.get(name) for name in METRICS},
            }
        )
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", range(len(frame), 0, -1))  # 1 = the oldest run
    return frame


def aliased_versions(client: MlflowClient, model_name: str) -> dict[str, AliasedVersion]:
    """The versions behind `champion` and `challenger` (an alias not set yet is left out)."""
    from mlflow.exceptions import MlflowException

    found: dict[str, AliasedVersion] = {}
    for alias in ALIASES:
        try:
            version = client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            continue
        found[alias] = AliasedVersion(
            alias, str(version.version), str(version.run_id), dict(version.tags)
        )
    if not found:
        raise NoData(f"No registered {model_name} with a champion yet: run `make train`.")
    return found


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
            "promoted": v.tags.get("promoted", ""),
            "promotion_reason": v.tags.get("promotion_reason", ""),
        }
        for v in versions
    ]
    columns = ["version", "aliases", "run_id", "promoted", "promotion_reason"]
    return pd.DataFrame(rows, columns=columns).sort_values("version", ascending=False)


def compare_frame(client: MlflowClient, versions: dict[str, AliasedVersion]) -> pd.DataFrame:
    """Test metrics side by side, one column per alias (each on its own test window)."""
    table: dict[str, dict[str, Any]] = {}
    for alias, version in versions.items():
        metrics = client.get_run(version.run_id).data.metrics
        table[f"{alias} (v{version.version})"] = {
            label: metrics.get(name) for name, label in METRICS.items()
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
