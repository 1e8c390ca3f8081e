"""MLflow tracking: where runs go and what a training run records.

The tracking URI and artifact root come from `Settings` (local profile: SQLite under `.crm/` and
local files; stack/prod: the MLflow server and S3). `mlflow.set_tracking_uri` is called by
`configure`, never at import time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from infra.lake import configure_s3_environment
from infra.settings import Settings
from training.models import WinProbabilityModel
from training.registry import REGISTRY_ERRORS, registry_error

EXPERIMENT = "crm-win-probability"


def configure(settings: Settings, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at this profile's tracking server and return the experiment id."""
    if settings.uses_s3:
        configure_s3_environment()
        for name, value in settings.env_exports().items():
            if name.startswith(("AWS_", "MLFLOW_S3_")):
                os.environ.setdefault(name, value)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        location = f"{settings.mlflow_artifact_root.rstrip('/')}/{experiment}"
        return mlflow.create_experiment(experiment, artifact_location=location)
    except REGISTRY_ERRORS as exc:  # a server that is down: nothing is logged or registered
        raise registry_error(settings, f"open experiment {experiment}", exc) from exc


def ensure_reachable(settings: Settings) -> None:
    """A read-only request to a tracking *server* (RegistryUnavailable if it does not answer);
    nothing for a local SQLite store, which cannot be down and must not be created early."""
    if not settings.tracking_uri.startswith(("http://", "https://")):
        return
    try:
        MlflowClient(tracking_uri=settings.tracking_uri).search_experiments(max_results=1)
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, "answer before training", exc) from exc


def flat_params(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    """MLflow params are strings of at most 6,000 characters."""
    return {f"{prefix}{k}": str(v)[:6000] for k, v in values.items()}


def log_metrics(prefix: str, metrics: dict[str, float]) -> None:
    mlflow.log_metrics(
        {f"{prefix}{k}": float(v) for k, v in metrics.items() if np.isfinite(float(v))}
    )


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_dict(obj, artifact_file)


def log_figures(paths: list[Path], artifact_path: str = "plots") -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_model(model: WinProbabilityModel, encoded_example: pd.DataFrame) -> ModelInfo:
    """The booster with the xgboost flavour, signature, input example and spec/calibration.

    The requirements are the flavour's own (xgboost, pinned): inferring them from what the
    training process imported costs ~12 s per run and adds nothing the model needs.
    """
    example = encoded_example.head(5)
    signature = infer_signature(example, model.raw_proba_encoded(example))
    return mlflow.xgboost.log_model(
        model.booster,
        name="model",
        signature=signature,
        input_example=example,
        metadata=model.metadata(),
        model_format="ubj",
        pip_requirements=mlflow.xgboost.get_default_pip_requirements(),
    )


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="crm-train-")
