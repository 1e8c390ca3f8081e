"""The gated model registry: every new version is `challenger`; `champion` must be earned.

The gate itself (`training.gate`) is a pure function of numbers: a candidate needs skill over
the base rate on its test window, and, when a champion exists, a paired improvement over the
champion re-scored on those same examples. This module gathers those numbers, moves the alias
and writes the decision on the version as tags.

It fails closed: a registry that cannot be read or written raises a `RegistryError` (a
`RegistryUnavailable`, retried by the flow, when the server is down or answers with a server
error) and nothing is promoted. Only "this model or alias does not exist" means "no champion".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from infra.settings import Settings
from training.errors import ExamplesError, RegistryError, RegistryUnavailable
from training.gate import (
    GatePolicy,
    PairedEvidence,
    SkillEvidence,
    check_skill,
    decide,
)
from training.metrics import probability_metrics
from training.models import WinProbabilityModel
from training.skill import paired_gains, skill_intervals

CHAMPION = "champion"
CHALLENGER = "challenger"
DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
# MLflow error codes of a server that is down, overloaded or failing: worth another try.
TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "SERVICE_UNDER_MAINTENANCE",
        "DEADLINE_EXCEEDED",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "IO_ERROR",
        "COULD_NOT_ACQUIRE_LOCK",
    }
)
REGISTRY_ERRORS: tuple[type[BaseException], ...] = (MlflowException, OSError)


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    promoted: bool
    reason: str
    champion_version: str | None = None  # the champion before the decision
    champion_auc: float | None = None  # the champion re-scored on this test window
    champion_brier: float | None = None
    outcome: str = ""  # training.gate's outcome: no_skill, first_champion, beats_champion, ...
    candidate: str = ""  # which model was registered: baseline or xgboost
    skill: dict[str, Any] | None = None  # the candidate against the base rate
    paired: dict[str, Any] | None = None  # the candidate against the champion
    champion_skill: dict[str, Any] | None = None  # the champion against the base rate

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def registry_error(settings: Settings, action: str, exc: BaseException) -> RegistryError:
    """A `RegistryError` saying what failed; `RegistryUnavailable` for an outage."""
    code = getattr(exc, "error_code", None)
    status = exc.get_http_status_code() if isinstance(exc, MlflowException) else None
    transient = isinstance(exc, OSError) or code in TRANSIENT_CODES or (status or 0) >= 500
    detail = " ".join(str(exc).split())
    detail = detail if len(detail) <= 300 else detail[:297] + "..."
    kind = RegistryUnavailable if transient else RegistryError
    hint = (
        "check that it is up (`crm stack status`) and train again"
        if transient
        else "check the registry's state and the settings (CRM_MLFLOW_TRACKING_URI)"
    )
    return kind(
        f"The model registry at {settings.tracking_uri} could not {action} "
        f"({code or type(exc).__name__}: {detail}); nothing was promoted: {hint}."
    )


def _client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def register(settings: Settings, model_uri: str, run_id: str, candidate: str = "") -> str:
    """Register a logged model as a new version of `settings.model_name`, alias `challenger`."""
    client = _client(settings)
    tags = {"run_id": run_id, **({"candidate": candidate} if candidate else {})}
    try:
        version = mlflow.register_model(model_uri, settings.model_name, tags=tags)
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version.version)
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"register {model_uri}", exc) from exc
    return str(version.version)


def alias_version(settings: Settings, alias: str) -> str | None:
    """The version behind an alias; None only if the model or the alias does not exist.

    Any other failure (server down, a transient error) raises a `RegistryError`: reading it as
    "no champion yet" would let any candidate through the gate.
    """
    try:
        model = _client(settings).get_registered_model(settings.model_name)
    except REGISTRY_ERRORS as exc:
        if getattr(exc, "error_code", None) == DOES_NOT_EXIST:
            return None
        raise registry_error(settings, f"read {settings.model_name}@{alias}", exc) from exc
    version = (model.aliases or {}).get(alias)
    return None if version is None else str(version)


def load_model(settings: Settings, alias: str = CHAMPION) -> WinProbabilityModel:
    """The registered model behind an alias, with its feature encoding and calibration."""
    version = alias_version(settings, alias)
    if version is None:
        raise RegistryError(
            f"No model {settings.model_name}@{alias} in the registry at {settings.tracking_uri}: "
            "nothing was promoted yet. `crm train` registers a model; the gate makes it champion "
            "only if it beats the base rate (see the run's promotion_reason)."
        )
    uri = f"models:/{settings.model_name}/{version}"
    try:
        booster = mlflow.xgboost.load_model(uri)
        metadata = mlflow.models.get_model_info(uri).metadata or {}
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"load {uri} ({alias})", exc) from exc
    if "feature_spec" not in metadata:
        raise RegistryError(
            f"{uri} has no feature_spec metadata: it was not logged by training.tracking; "
            "retrain it with `crm train`."
        )
    return WinProbabilityModel.from_metadata(booster, metadata)


def promote(
    settings: Settings,
    version: str,
    *,
    candidate: str,
    evidence: SkillEvidence,
    candidate_p: np.ndarray,
    test_frame: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    policy: GatePolicy,
) -> PromotionDecision:
    """Apply the gate to `version` and move the `champion` alias only if it is earned.

    `candidate_p` are the candidate's probabilities on `test_frame` (labels `y`, opportunity ids
    `groups`); the champion, if any, is re-scored on the same rows.
    """
    check = check_skill(evidence, policy)
    champion_version = alias_version(settings, CHAMPION)
    paired: PairedEvidence | None = None
    champion_error: str | None = None
    champion_metrics: dict[str, float] = {}
    champion_skill: dict[str, Any] | None = None
    if champion_version is not None and champion_version != version:
        champion = load_model(settings, CHAMPION)
        try:
            p_champion = champion.predict_proba(test_frame)
        except (ExamplesError, ValueError) as exc:  # e.g. features missing or renamed
            champion_error = str(exc)
        else:
            champion_metrics = probability_metrics(y, p_champion)
            bootstrap = policy.resamples, policy.confidence, policy.seed
            gains = paired_gains(groups, y, p_champion, candidate_p, *bootstrap)
            paired = PairedEvidence(
                champion_brier=champion_metrics["brier"],
                champion_log_loss=champion_metrics["log_loss"],
                brier_gain=gains["brier_gain"],
                log_loss_gain=gains["log_loss_gain"],
            )
            intervals = skill_intervals(groups, y, p_champion, evidence.base_rate, *bootstrap)
            champion_skill = {name: i.to_dict() for name, i in intervals.items()}
    verdict = decide(
        check,
        version=version,
        champion_version=champion_version,
        paired=paired,
        champion_error=champion_error,
        confidence=policy.confidence,
    )
    decision = PromotionDecision(
        version=version,
        promoted=verdict.promoted,
        reason=verdict.reason,
        champion_version=champion_version,
        champion_auc=champion_metrics.get("auc"),
        champion_brier=champion_metrics.get("brier"),
        outcome=verdict.outcome,
        candidate=candidate,
        skill=evidence.to_dict(),
        paired=paired.to_dict() if paired else None,
        champion_skill=champion_skill,
    )
    client = _client(settings)
    tags = {
        "promoted": str(decision.promoted),
        "promotion_outcome": decision.outcome,
        "promotion_reason": decision.reason,
    }
    try:  # the decision first, the alias last: a failure leaves the champion where it was
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, version, key, value)
        if decision.promoted:
            client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    except REGISTRY_ERRORS as exc:
        raise registry_error(settings, f"record the decision on v{version}", exc) from exc
    return decision
