"""The whole training step as one plain function: examples -> split -> guard -> models -> MLflow.

Two candidates are fitted (the logistic baseline and XGBoost), each calibrated on validation;
the one with the lower cross-fitted validation log loss is the one registered. The test window
is scored once, for the report and the gate (skill over the base rate with intervals over
opportunities, then a paired comparison with the champion; `training.gate`).

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

from feature_repo.entities import OPPORTUNITY_ID
from feature_repo.feature_services import SCORING_SERVICE
from infra.settings import Settings
from training import plots, reference, tracking
from training.config import TrainingConfig
from training.examples import build_examples, sample_opportunities
from training.features import LABEL, TRUE_PROBABILITY, FeatureSpec, feature_columns
from training.gate import (
    GatePolicy,
    Selection,
    SkillCheck,
    SkillEvidence,
    check_skill,
    choose_candidate,
)
from training.leakage import guard
from training.metrics import evaluate, probability_metrics
from training.models import (
    BASELINE,
    XGBOOST,
    Calibration,
    WinProbabilityModel,
    baseline_model,
    calibrate,
    final_booster,
    fit_xgboost,
)
from training.registry import PromotionDecision, promote, register
from training.skill import skill_intervals
from training.split import TimeSplit, time_split


@dataclass
class TrainingReport:
    metrics: dict[str, dict[str, float]]  # "baseline", "xgboost", and "oracle" when known
    split: dict[str, Any]
    best_params: dict[str, Any]
    calibration: str  # of the registered candidate
    calibration_losses: dict[str, float]  # of the registered candidate
    n_features: int
    wall_time_s: float
    candidate: str = XGBOOST  # the candidate that won on validation: the one registered
    selection: Selection | None = None
    skill_check: SkillCheck | None = None  # the registered candidate against the base rate
    calibrations: dict[str, str] = field(default_factory=dict)  # every candidate's method
    baseline_step_error: float = 0.0  # max |logit| gap of the baseline's booster form (train)
    run_id: str | None = None
    model_version: str | None = None
    decision: PromotionDecision | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    univariate_auc_max: float = 0.0
    model: WinProbabilityModel | None = field(default=None, repr=False)  # the registered one
    models: dict[str, WinProbabilityModel] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what `crm train --json` prints)."""
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            "candidate": self.candidate,
            "decision": self.decision.to_dict() if self.decision else None,
            "skill_check": self.skill_check.to_dict() if self.skill_check else None,
            "selection": self.selection.to_dict() if self.selection else None,
            "metrics": self.metrics,
            "split": self.split,
            "best_params": self.best_params,
            "calibration": self.calibration,
            "calibration_losses": self.calibration_losses,
            "calibrations": self.calibrations,
            "baseline_step_error": self.baseline_step_error,
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
    """Train baseline and XGBoost on a time split, log to MLflow, register the better one on
    validation and gate it (skill over the base rate, then a paired win over the champion).

    `examples` defaults to the Feast examples of `snapshot` (the latest validated one by
    default); `lineage` adds to (or, for given examples, states) where they came from.
    """
    config = config or TrainingConfig()
    started = time.perf_counter()
    if config.track:  # fail before minutes of training when the tracking server is down
        tracking.ensure_reachable(settings)
    # BLAS/OpenMP threads beyond n_jobs only fight each other on a shared machine.
    with threadpool_limits(limits=config.n_jobs):
        report = _train(settings, config, examples, snapshot, lineage)
    report.wall_time_s = time.perf_counter() - started
    if report.run_id:
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.MlflowClient().log_metric(report.run_id, "wall_time_s", report.wall_time_s)
    return report


@dataclass
class _Scored:
    """One candidate after fitting and calibration: its test and validation probabilities."""

    model: WinProbabilityModel
    calibration: Calibration
    test: np.ndarray
    valid: dict[str, float]
    raw_test: np.ndarray  # uncalibrated: the calibrator must not make these worse


def _calibrated(
    model: WinProbabilityModel,
    valid_x: pd.DataFrame,
    y_valid: np.ndarray,
    valid_groups: np.ndarray,
    test_x: pd.DataFrame,
    policy: GatePolicy,
) -> _Scored:
    """Choose the model's calibrator on validation; its cross-fitted validation metrics."""
    calibration = calibrate(
        model.raw_proba_encoded(valid_x),
        y_valid,
        policy.seed,
        groups=valid_groups,
        resamples=policy.resamples,
        confidence=policy.confidence,
    )
    model.calibrator = calibration.calibrator
    valid = probability_metrics(y_valid, calibration.out_of_fold)
    raw = model.raw_proba_encoded(test_x)
    return _Scored(model, calibration, calibration.calibrator.apply(raw), valid, raw)


def _train(
    settings: Settings,
    config: TrainingConfig,
    examples: pd.DataFrame | None,
    snapshot: str | None,
    lineage: dict[str, Any] | None,
) -> TrainingReport:
    open_deals = None
    if examples is None:
        built = build_examples(
            settings,
            snapshot,
            step_days=config.step_days,
            max_examples=config.max_examples,
            seed=config.seed,
        )
        examples, lineage = built.frame, {**built.lineage, **(lineage or {})}
        open_deals = built.open_deals
    lineage = {"feature_service": SCORING_SERVICE, "feast_project": settings.feast_project} | (
        lineage or {}
    )
    if config.max_examples is not None and len(examples) > config.max_examples:
        available = len(examples)
        examples = sample_opportunities(examples, config.max_examples, config.seed)
        lineage = lineage | {"examples_available": available, "examples_sampled": len(examples)}
    split = time_split(
        examples, test_fraction=config.test_fraction, valid_fraction=config.valid_fraction
    )
    columns = feature_columns(examples)
    y_train, y_valid, y_test = (s[LABEL].to_numpy() for s in (split.train, split.valid, split.test))
    univariate = guard(split.train, y_train, columns)
    spec = FeatureSpec.infer(split.train, columns)
    base_rate = float(y_train.mean())
    train_x, valid_x, test_x = (spec.encode(s) for s in (split.train, split.valid, split.test))

    baseline, step_error = baseline_model(split.train, y_train, spec)
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
    xgboost = WinProbabilityModel(final_booster(search), spec)
    policy = GatePolicy.from_settings(settings, seed=config.seed)
    valid_groups = split.valid[OPPORTUNITY_ID].to_numpy()
    scored = {
        name: _calibrated(model, valid_x, y_valid, valid_groups, test_x, policy)
        for name, model in ((BASELINE, baseline), (XGBOOST, xgboost))
    }
    selection = choose_candidate({name: s.valid for name, s in scored.items()})
    winner = scored[selection.winner]

    truth = split.test[TRUE_PROBABILITY].to_numpy() if TRUE_PROBABILITY in split.test else None
    if truth is not None and np.isnan(truth).any():
        truth = None
    groups = split.test[OPPORTUNITY_ID].to_numpy()
    metrics = {
        name: evaluate(y_test, s.test, base_rate=base_rate, true_probability=truth)
        | _skill(groups, y_test, s.test, base_rate, policy)
        | _uncalibrated(y_test, s.raw_test)
        for name, s in scored.items()
    }
    if truth is not None:
        metrics["oracle"] = probability_metrics(y_test, truth) | _skill(
            groups, y_test, truth, base_rate, policy
        )
    evidence = SkillEvidence.from_metrics(metrics[selection.winner])
    report = TrainingReport(
        metrics=metrics,
        split=split.summary(),
        best_params={**search.params, "best_iteration": search.best_iteration},
        calibration=winner.calibration.calibrator.method,
        calibration_losses=winner.calibration.losses,
        n_features=len(spec.columns),
        wall_time_s=0.0,
        candidate=selection.winner,
        selection=selection,
        skill_check=check_skill(evidence, policy),
        calibrations={name: s.calibration.calibrator.method for name, s in scored.items()},
        baseline_step_error=step_error,
        lineage=lineage,
        univariate_auc_max=max(univariate.values(), default=0.5),
        model=winner.model,
        models={name: s.model for name, s in scored.items()},
    )
    if config.track:
        scores = {name: s.test for name, s in scored.items()}
        if truth is not None:
            scores["oracle"] = truth
        gate = _Gate(evidence, winner.test, groups, policy)
        monitored = _Reference.of(split.train, open_deals, winner.model, winner.test, base_rate)
        _track(
            settings,
            config,
            report,
            split,
            test_x,
            scores,
            search.trials,
            univariate,
            gate,
            monitored,
        )
    return report


def _skill(
    groups: np.ndarray, y: np.ndarray, p: np.ndarray, base_rate: float, policy: GatePolicy
) -> dict[str, float]:
    """`brier_skill`, `log_loss_skill` and their interval ends (`_low`, `_high`)."""
    intervals = skill_intervals(
        groups,
        y,
        p,
        base_rate,
        resamples=policy.resamples,
        confidence=policy.confidence,
        seed=policy.seed,
    )
    out: dict[str, float] = {}
    for name, interval in intervals.items():
        out |= {name: interval.estimate, f"{name}_low": interval.low, f"{name}_high": interval.high}
    return out


def _uncalibrated(y: np.ndarray, raw: np.ndarray) -> dict[str, float]:
    """The raw scores' log loss and Brier, to show what calibration did on the test window."""
    metrics = probability_metrics(y, raw)
    return {"uncalibrated_log_loss": metrics["log_loss"], "uncalibrated_brier": metrics["brier"]}


@dataclass(frozen=True)
class _Reference:
    """What `training.reference` saves with the run: the rows monitoring compares against."""

    rows: pd.DataFrame
    population: str
    p_rows: np.ndarray  # the model's probabilities for `rows`
    p_test: np.ndarray
    base_rate: float

    @classmethod
    def of(
        cls,
        train: pd.DataFrame,
        open_deals: pd.DataFrame | None,
        model: WinProbabilityModel,
        p_test: np.ndarray,
        base_rate: float,
    ) -> _Reference:
        """The snapshot's open deals when there are any, else the training rows."""
        if open_deals is not None and not open_deals.empty:
            rows, population = open_deals, reference.OPEN_DEALS
        else:
            rows, population = train, reference.TRAINING_ROWS
        return cls(rows, population, model.predict_proba(rows), p_test, base_rate)


@dataclass(frozen=True)
class _Gate:
    """What `registry.promote` needs besides the model version."""

    evidence: SkillEvidence
    p_test: np.ndarray
    groups: np.ndarray
    policy: GatePolicy


def _track(
    settings: Settings,
    config: TrainingConfig,
    report: TrainingReport,
    split: TimeSplit,
    test_x: pd.DataFrame,
    scores: dict[str, np.ndarray],
    trials: list[dict[str, Any]],
    univariate: dict[str, float],
    gate: _Gate,
    monitored: _Reference,
) -> None:
    """Log the run to MLflow; with `config.register_model`, register the model and gate it."""
    model = report.model
    assert model is not None and report.selection is not None  # set by _train
    y_test = split.test[LABEL].to_numpy()
    experiment_id = tracking.configure(settings)  # a server that is down: RegistryUnavailable
    tags = {
        "model_name": settings.model_name,
        "feature_service": str(report.lineage.get("feature_service")),
        "feast_project": str(report.lineage.get("feast_project")),
        "snapshot": str(report.lineage.get("snapshot", "in-memory")),
        "profile": settings.profile.value,
        "candidate": report.candidate,
        "selection_reason": report.selection.reason,
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        report.run_id = run.info.run_id
        mlflow.log_params(tracking.flat_params("xgb_", report.best_params))
        mlflow.log_params(tracking.flat_params("split_", report.split))
        mlflow.log_params(tracking.flat_params("lineage_", report.lineage))
        mlflow.log_params(tracking.flat_params("config_", asdict(config)))
        mlflow.log_params(tracking.flat_params("gate_", asdict(gate.policy)))
        mlflow.log_params(
            {
                "candidate": report.candidate,
                "calibration": report.calibration,
                **{f"{name}_calibration": m for name, m in report.calibrations.items()},
                "n_features": report.n_features,
                "search_size": len(trials),
                "features": ",".join(model.spec.columns)[:6000],
            }
        )
        for name, values in report.metrics.items():
            tracking.log_metrics(f"{name}_test_", values)
        for name, values in report.selection.valid.items():
            tracking.log_metrics(f"{name}_valid_", values)
        tracking.log_metrics("calibration_valid_log_loss_", report.calibration_losses)
        tracking.log_metrics("baseline_", {"train_step_error": report.baseline_step_error})
        tracking.log_json(trials, "search/trials.json")
        tracking.log_json(univariate, "leakage/univariate_auc.json")
        tracking.log_json(report.lineage, "lineage.json")
        tracking.log_json(report.selection.to_dict(), "gate/selection.json")
        with tracking.scratch_dir() as tmp:
            folder = Path(tmp)
            registered = f"{report.candidate} (registered, {report.calibration})"
            tracking.log_figures(
                [
                    plots.roc_plot(y_test, scores, folder / "roc.png"),
                    plots.calibration_plot(y_test, scores, folder / "calibration.png"),
                    plots.importance_plot(
                        model.importance(), folder / "feature_importance.png", title=registered
                    ),
                    plots.reliability_plot(
                        y_test,
                        {
                            f"{report.candidate} raw": model.raw_proba_encoded(test_x),
                            registered: scores[report.candidate],
                        },
                        folder / "reliability.png",
                    ),
                ]
            )
        reference.log_reference(
            monitored.rows,
            model.spec,
            monitored.p_rows,
            test_probabilities=monitored.p_test,
            population=monitored.population,
            base_rate=monitored.base_rate,
            bins=settings.monitor_bins,
            sample_rows=settings.monitor_reference_rows,
            seed=config.seed,
            lineage=report.lineage,
        )
        info = tracking.log_model(model, test_x)
        if config.register_model:
            version = register(settings, info.model_uri, report.run_id, report.candidate)
            report.model_version = version
            decision = promote(
                settings,
                version,
                candidate=report.candidate,
                evidence=gate.evidence,
                candidate_p=gate.p_test,
                test_frame=split.test,
                y=y_test,
                groups=gate.groups,
                policy=gate.policy,
            )
            report.decision = decision
            mlflow.set_tags(
                {
                    "model_version": version,
                    "promoted": str(decision.promoted),
                    "promotion_outcome": decision.outcome,
                    "promotion_reason": decision.reason[:5000],
                }
            )
            if decision.paired:
                tracking.log_metrics("gate_paired_", _flat(decision.paired))
            if decision.champion_skill:
                tracking.log_metrics("gate_champion_", _flat(decision.champion_skill))


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested numbers as one level: {"brier_gain": {"low": 0.1}} -> {"brier_gain_low": 0.1}."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}" if key != "estimate" else prefix.rstrip("_")
        if isinstance(value, dict):
            out |= _flat(value, f"{name}_")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
