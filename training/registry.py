"""The gated model registry: every new version is `challenger`; `champion` must be earned.

A challenger replaces the champion only if, on the challenger's own test window, it has both a
higher ROC AUC and a lower Brier score than the champion re-scored on those same examples. The
first registered model becomes champion. Every decision is written on the version as tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from infra.settings import Settings
from training.errors import ExamplesError, RegistryError
from training.metrics import probability_metrics
from training.models import WinProbabilityModel

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    promoted: bool
    reason: str
    champion_version: str | None = None  # the champion before the decision
    champion_auc: float | None = None
    champion_brier: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compare(candidate: dict[str, float], champion: dict[str, float]) -> tuple[bool, str]:
    """The gate: both AUC higher and Brier lower on the same test examples."""
    better_auc = candidate["auc"] > champion["auc"]
    better_brier = candidate["brier"] < champion["brier"]
    detail = (
        f"AUC {candidate['auc']:.4f} vs champion {champion['auc']:.4f}, "
        f"Brier {candidate['brier']:.4f} vs champion {champion['brier']:.4f}"
    )
    if better_auc and better_brier:
        return True, f"challenger beats champion on the same test window: {detail}"
    failed = [
        n for n, ok in (("AUC not higher", better_auc), ("Brier not lower", better_brier)) if not ok
    ]
    return False, f"champion kept ({'; '.join(failed)}): {detail}"


def _client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def register(settings: Settings, model_uri: str, run_id: str) -> str:
    """Register a logged model as a new version of `settings.model_name`, alias `challenger`."""
    client = _client(settings)
    try:
        version = mlflow.register_model(model_uri, settings.model_name, tags={"run_id": run_id})
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version.version)
    except MlflowException as exc:
        raise RegistryError(
            f"Could not register {model_uri} as {settings.model_name}: {exc}. Check that the "
            f"MLflow tracking server at {settings.tracking_uri} is reachable (`crm stack up`)."
        ) from exc
    return str(version.version)


def alias_version(settings: Settings, alias: str) -> str | None:
    """The version behind an alias, or None if the alias (or the model) does not exist yet."""
    try:
        return str(_client(settings).get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException:
        return None


def load_model(settings: Settings, alias: str = CHAMPION) -> WinProbabilityModel:
    """The registered model behind an alias, with its feature encoding and calibration."""
    _client(settings)
    uri = f"models:/{settings.model_name}@{alias}"
    try:
        booster = mlflow.xgboost.load_model(uri)
        metadata = mlflow.models.get_model_info(uri).metadata or {}
    except MlflowException as exc:
        raise RegistryError(
            f"No model {settings.model_name}@{alias} in the registry at {settings.tracking_uri}: "
            "run `crm train` first."
        ) from exc
    if "feature_spec" not in metadata:
        raise RegistryError(
            f"{uri} has no feature_spec metadata: it was not logged by training.tracking; "
            "retrain it with `crm train`."
        )
    return WinProbabilityModel.from_metadata(booster, metadata)


def promote(
    settings: Settings,
    version: str,
    candidate_metrics: dict[str, float],
    test_frame: pd.DataFrame,
    y: np.ndarray,
) -> PromotionDecision:
    """Apply the gate to `version` and move the `champion` alias only if it is earned."""
    client = _client(settings)
    champion_version = alias_version(settings, CHAMPION)
    if champion_version is None:
        decision = PromotionDecision(version, True, "first model: no champion yet")
    elif champion_version == version:
        decision = PromotionDecision(version, True, "already champion", champion_version)
    else:
        champion = load_model(settings, CHAMPION)
        try:
            champion_metrics = probability_metrics(y, champion.predict_proba(test_frame))
        except (ExamplesError, ValueError) as exc:  # e.g. features missing or renamed
            decision = PromotionDecision(
                version,
                False,
                f"champion v{champion_version} cannot score this feature set ({exc}); champion "
                "kept. Promote by hand (`mlflow` alias) if the feature change is intended.",
                champion_version,
            )
        else:
            promoted, reason = compare(candidate_metrics, champion_metrics)
            decision = PromotionDecision(
                version,
                promoted,
                reason,
                champion_version,
                champion_metrics["auc"],
                champion_metrics["brier"],
            )
    if decision.promoted:
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    client.set_model_version_tag(settings.model_name, version, "promoted", str(decision.promoted))
    client.set_model_version_tag(settings.model_name, version, "promotion_reason", decision.reason)
    return decision
