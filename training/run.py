"""The whole training step as one plain function: examples -> split -> guard -> models -> MLflow.

`train` is what the Prefect flow `train` (flows/train.py) runs; it is testable without Prefect.
The flow returns `TrainingReport.to_dict()` and prints nothing: `training.summary` renders that
dict for a terminal.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from feature_repo.feature_services import SCORING_SERVICE
from infra.settings import Settings
from training import plots, tracking
from training.config import TrainingConfig
from training.examples import build_examples
from training.features import LABEL, TRUE_PROBABILITY, FeatureSpec, feature_columns
from training.leakage import guard
from training.metrics import evaluate, probability_metrics
from training.models import (
    WinProbabilityModel,
    baseline_predict,
    choose_calibration,
    final_booster,
    fit_baseline,
    fit_xgboost,
)
from training.registry import PromotionDecision, promote, register
from training.split import TimeSplit, time_split


@dataclass
class TrainingReport:
    metrics: dict[str, dict[str, float]]  # "baseline", "xgboost", and "oracle" when known
    split: dict[str, Any]
    best_params: dict[str, Any]
    calibration: str
    calibration_losses: dict[str, float]
    n_features: int
    wall_time_s: float
    run_id: str | None = None
    model_version: str | None = None
    decision: PromotionDecision | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    univariate_auc_max: float = 0.0
    model: WinProbabilityModel | None = field(default=None, repr=False)  # not in to_dict

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what `crm train --json` prints)."""
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            "decision": self.decision.to_dict() if self.decision else None,
            "metrics": self.metrics,
            "split": self.split,
            "best_params": self.best_params,
            "calibration": self.calibration,
            "calibration_losses": self.calibration_losses,
            "n_features": self.n_features,
            "univariate_auc_max": self.univariate_auc_max,
            "wall_time_s": round(self.wall_time_s, 3),
            "lineage": self.lineage,
        }


def train(
    settings: Settings,
    config: TrainingConfig | None = None,
    *,
    examples: pd.DataFrame | None = None,
    snapshot: str | None = None,
    lineage: dict[str, Any] | None = None,
) -> TrainingReport:
    """Train baseline and XGBoost on a time split, log to MLflow, register and gate the model.

    `examples` defaults to the Feast examples of `snapshot` (the latest validated one by
    default); `lineage` adds to (or, for given examples, states) where they came from.
    """
    config = config or TrainingConfig()
    started = time.perf_counter()
    # BLAS/OpenMP threads beyond n_jobs only fight each other on a shared machine.
    with threadpool_limits(limits=config.n_jobs):
        report = _train(settings, config, examples, snapshot, lineage)
    report.wall_time_s = time.perf_counter() - started
    if report.run_id:
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.MlflowClient().log_metric(report.run_id, "wall_time_s", report.wall_time_s)
    return report


def _train(
    settings: Settings,
    config: TrainingConfig,
    examples: pd.DataFrame | None,
    snapshot: str | None,
    lineage: dict[str, Any] | None,
) -> TrainingReport:
    if examples is None:
        built = build_examples(settings, snapshot, step_days=config.step_days)
        examples, lineage = built.frame, {**built.lineage, **(lineage or {})}
    lineage = {"feature_service": SCORING_SERVICE, "feast_project": settings.feast_project} | (
        lineage or {}
    )
    split = time_split(
        examples, test_fraction=config.test_fraction, valid_fraction=config.valid_fraction
    )
    columns = feature_columns(examples)
    y_train, y_valid, y_test = (s[LABEL].to_numpy() for s in (split.train, split.valid, split.test))
    univariate = guard(split.train, y_train, columns)
    spec = FeatureSpec.infer(split.train, columns)
    base_rate = float(y_train.mean())

    baseline = fit_baseline(split.train, y_train, spec)
    p_baseline = baseline_predict(baseline, split.test, spec)

    train_x, valid_x, test_x = (spec.encode(s) for s in (split.train, split.valid, split.test))
    search = fit_xgboost(
        train_x,
        y_train,
        valid_x,
        y_valid,
        spec,
        search_size=config.search_size,
        seed=config.seed,
        n_jobs=config.n_jobs,
    )
    model = WinProbabilityModel(final_booster(search), spec)
    calibrator, calibration_losses = choose_calibration(
        model.raw_proba_encoded(valid_x), y_valid, config.seed
    )
    model.calibrator = calibrator
    p_model = calibrator.apply(model.raw_proba_encoded(test_x))

    truth = split.test[TRUE_PROBABILITY].to_numpy() if TRUE_PROBABILITY in split.test else None
    if truth is not None and np.isnan(truth).any():
        truth = None
    metrics = {
        "baseline": evaluate(y_test, p_baseline, base_rate=base_rate, true_probability=truth),
        "xgboost": evaluate(y_test, p_model, base_rate=base_rate, true_probability=truth),
    }
    if truth is not None:
        metrics["oracle"] = probability_metrics(y_test, truth)
    report = TrainingReport(
        metrics=metrics,
        split=split.summary(),
        best_params={**search.params, "best_iteration": search.best_iteration},
        calibration=calibrator.method,
        calibration_losses=calibration_losses,
        n_features=len(spec.columns),
        wall_time_s=0.0,
        lineage=lineage,
        univariate_auc_max=max(univariate.values(), default=0.5),
        model=model,
    )
    if config.track:
        scores = {"xgboost": p_model, "baseline": p_baseline}
        if truth is not None:
            scores["oracle"] = truth
        _track(settings, config, report, split, test_x, scores, search.trials, univariate)
    return report


def _track(
    settings: Settings,
    config: TrainingConfig,
    report: TrainingReport,
    split: TimeSplit,
    test_x: pd.DataFrame,
    scores: dict[str, np.ndarray],
    trials: list[dict[str, Any]],
    univariate: dict[str, float],
) -> None:
    """Log the run to MLflow; with `config.register_model`, register the model and gate it."""
    model = report.model
    assert model is not None  # set by _train
    y_test = split.test[LABEL].to_numpy()
    experiment_id = tracking.configure(settings)
    tags = {
        "model_name": settings.model_name,
        "feature_service": str(report.lineage.get("feature_service")),
        "feast_project": str(report.lineage.get("feast_project")),
        "snapshot": str(report.lineage.get("snapshot", "in-memory")),
        "profile": settings.profile.value,
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        report.run_id = run.info.run_id
        mlflow.log_params(tracking.flat_params("xgb_", report.best_params))
        mlflow.log_params(tracking.flat_params("split_", report.split))
        mlflow.log_params(tracking.flat_params("lineage_", report.lineage))
        mlflow.log_params(tracking.flat_params("config_", asdict(config)))
        mlflow.log_params(
            {
                "calibration": report.calibration,
                "n_features": report.n_features,
                "search_size": len(trials),
                "features": ",".join(model.spec.columns)[:6000],
            }
        )
        for name, values in report.metrics.items():
            tracking.log_metrics(f"{name}_test_", values)
        tracking.log_metrics("calibration_valid_log_loss_", report.calibration_losses)
        tracking.log_json(trials, "search/trials.json")
        tracking.log_json(univariate, "leakage/univariate_auc.json")
        tracking.log_json(report.lineage, "lineage.json")
        with tracking.scratch_dir() as tmp:
            folder = Path(tmp)
            tracking.log_figures(
                [
                    plots.roc_plot(y_test, scores, folder / "roc.png"),
                    plots.calibration_plot(y_test, scores, folder / "calibration.png"),
                    plots.importance_plot(model.importance(), folder / "feature_importance.png"),
                ]
            )
        info = tracking.log_model(model, test_x)
        if config.register_model:
            version = register(settings, info.model_uri, report.run_id)
            report.model_version = version
            decision = promote(settings, version, report.metrics["xgboost"], split.test, y_test)
            report.decision = decision
            mlflow.set_tags(
                {
                    "model_version": version,
                    "promoted": str(decision.promoted),
                    "promotion_reason": decision.reason,
                }
            )
