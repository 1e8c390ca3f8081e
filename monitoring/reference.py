"""The champion's training reference, read back from its MLflow run.

`training.reference` logs it with every run; here the registered version's run is found and
its `monitoring/` artifacts are downloaded. A version trained before references existed has
none: the error says to retrain, since drift against anything else would be a guess.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from infra.settings import Settings
from monitoring.errors import NoReferenceError
from training import tracking
from training.reference import (
    FEATURES_FILE,
    PREDICTIONS_FILE,
    PROBABILITY,
    PROFILE_FILE,
    REFERENCE_DIR,
)
from training.registry import REGISTRY_ERRORS, registry_error


@dataclass(frozen=True)
class Reference:
    """One model version's training reference."""

    version: str
    run_id: str
    profile: dict[str, Any]
    sample: pd.DataFrame  # training rows' raw features (a sample)
    probabilities: pd.Series  # the model's scores of the sampled reference rows

    @property
    def base_rate(self) -> float:
        return float(self.profile["base_rate"])

    @property
    def snapshot(self) -> str | None:
        return self.profile.get("snapshot")


def version_run_id(settings: Settings, version: str) -> str:
    """The MLflow run that logged a registered version."""
    tracking.configure(settings)
    try:
        found = MlflowClient().get_model_version(settings.model_name, version)
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"read {settings.model_name} v{version}", exc) from exc
    if not found.run_id:
        raise NoReferenceError(
            f"{settings.model_name} v{version} has no MLflow run: retrain it with `crm train`."
        )
    return str(found.run_id)


def has_reference(settings: Settings, version: str) -> bool:
    """Whether version `version`'s run logged a reference (one listing, nothing downloaded)."""
    run_id = version_run_id(settings, version)
    try:
        listed = MlflowClient().list_artifacts(run_id, REFERENCE_DIR)
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"list run {run_id}'s artifacts", exc) from exc
    return any(item.path == f"{REFERENCE_DIR}/{PROFILE_FILE}" for item in listed)


def load_reference(settings: Settings, version: str) -> Reference:
    """Version `version`'s reference (`NoReferenceError` if it was trained without one)."""
    run_id = version_run_id(settings, version)
    with tempfile.TemporaryDirectory(prefix="crm-monitor-") as tmp:
        try:
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=REFERENCE_DIR, dst_path=tmp
                )
            )
        except REGISTRY_ERRORS as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or isinstance(
                exc, FileNotFoundError
            ):
                folder = Path(tmp) / "missing"
            else:
                raise registry_error(settings, f"read run {run_id}'s reference", exc) from exc
        if not (folder / PROFILE_FILE).exists():
            raise NoReferenceError(
                f"{settings.model_name} v{version} (run {run_id}) has no training reference "
                f"({REFERENCE_DIR}/{PROFILE_FILE}): it was trained before monitoring existed. "
                "Retrain with `crm train` so drift is measured against the model's own data."
            )
        profile = json.loads((folder / PROFILE_FILE).read_text())
        sample = pd.read_parquet(folder / FEATURES_FILE)
        probabilities = pd.read_parquet(folder / PREDICTIONS_FILE)[PROBABILITY]
        if len(probabilities) != len(sample):
            raise NoReferenceError(
                f"{settings.model_name} v{version}'s reference has {len(sample)} rows but "
                f"{len(probabilities)} scores: it is damaged; retrain with `crm train`."
            )
    return Reference(version, run_id, profile, sample, probabilities)
