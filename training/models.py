"""The two candidates: a logistic-regression baseline and a tuned XGBoost, each optionally
calibrated; both become a `WinProbabilityModel` (the baseline written as an additive booster by
`training.additive`), so whichever wins on validation is registered and served the same way.

XGBoost sees the numeric matrix of `FeatureSpec.encode` with categoricals as integer codes typed
`c`, so it splits on category sets natively. Historical win rates get a monotone (+1) constraint:
all else equal, a better track record must not lower the score (and the direction test checks it).
Early stopping and the hyper-parameter choice use the validation slice only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.additive import compile_baseline
from training.features import FeatureSpec
from training.leakage import base_name
from training.metrics import EPS
from training.skill import paired_gains

MONOTONE_INCREASING = ("win_rate",)
CALIBRATION_METHODS = ("none", "platt", "isotonic")
# Pseudo-deals at the overall win rate added to every step of an isotonic calibration.
ISOTONIC_PRIOR = 2.0
# The candidates a run trains; the one with the lower validation log loss is registered.
BASELINE, XGBOOST = "baseline", "xgboost"

# The search space; `search_configs` takes a seeded sample of it.
GRID: dict[str, tuple[Any, ...]] = {
    "max_depth": (2, 3, 4, 6),
    "learning_rate": (0.03, 0.1),
    "min_child_weight": (1, 10),
    "subsample": (0.8, 1.0),
    "colsample_bytree": (0.7, 1.0),
    "reg_lambda": (1.0, 10.0),
}


def fit_baseline(train: pd.DataFrame, y: np.ndarray, spec: FeatureSpec) -> Pipeline:
    """One-hot categoricals + scaled numbers -> L2 logistic regression."""
    columns = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(spec.numeric),
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="<missing>"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(spec.categorical),
            ),
        ]
    )
    model = Pipeline([("columns", columns), ("logreg", LogisticRegression(C=1.0, max_iter=2000))])
    model.fit(spec.baseline_frame(train), y)
    return model


def baseline_predict(model: Pipeline, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    return model.predict_proba(spec.baseline_frame(frame))[:, 1]


def search_configs(size: int, seed: int) -> list[dict[str, Any]]:
    """`size` distinct configurations, always including a shallow default."""
    all_configs = [
        dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())
    ]
    default = {
        "max_depth": 3,
        "learning_rate": 0.1,
        "min_child_weight": 1,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "reg_lambda": 1.0,
    }
    others = [c for c in all_configs if c != default]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(others), size=min(size, len(all_configs)) - 1, replace=False)
    configs = [default] + [others[i] for i in picked]
    return configs[:size]


def monotone_constraints(spec: FeatureSpec) -> tuple[int, ...]:
    return tuple(
        1 if any(m in base_name(c) for m in MONOTONE_INCREASING) and c in spec.numeric else 0
        for c in spec.columns
    )


@dataclass
class SearchResult:
    model: xgb.XGBClassifier
    params: dict[str, Any]
    best_iteration: int
    valid_log_loss: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def fit_xgboost(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    spec: FeatureSpec,
    *,
    search_size: int = 8,
    seed: int = 42,
    n_jobs: int = 1,
    max_rounds: int = 2000,
) -> SearchResult:
    """Try `search_size` configs with early stopping on validation; keep the lowest log loss."""
    best: SearchResult | None = None
    trials: list[dict[str, Any]] = []
    for params in search_configs(search_size, seed):
        model = xgb.XGBClassifier(
            n_estimators=max_rounds,
            early_stopping_rounds=50,
            eval_metric="logloss",
            tree_method="hist",
            enable_categorical=True,
            feature_types=spec.feature_types,
            max_cat_to_onehot=1,
            monotone_constraints=monotone_constraints(spec),
            random_state=seed,
            n_jobs=n_jobs,
            **params,
        )
        model.fit(train_x, train_y, eval_set=[(valid_x, valid_y)], verbose=False)
        loss = float(model.best_score)
        trials.append(
            {**params, "best_iteration": int(model.best_iteration), "valid_log_loss": loss}
        )
        if best is None or loss < best.valid_log_loss:
            best = SearchResult(model, params, int(model.best_iteration), loss)
    assert best is not None  # search_configs returns at least one config
    best.trials = trials
    return best


@dataclass(frozen=True)
class Calibrator:
    """A monotone map of raw scores to probabilities: identity, Platt or isotonic."""

    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype="float64"), EPS, 1.0 - EPS)
        if self.method == "platt":
            z = self.params["a"] * np.log(p / (1.0 - p)) + self.params["b"]
            return 1.0 / (1.0 + np.exp(-z))
        if self.method == "isotonic":
            out = np.interp(p, self.params["x"], self.params["y"])
            return np.clip(out, EPS, 1.0 - EPS)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(method=data["method"], params=data.get("params", {}))


def fit_calibrator(method: str, p: np.ndarray, y: np.ndarray) -> Calibrator:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1.0 - EPS)
    if method == "platt":
        logit = np.log(p / (1.0 - p)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
        return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
    if method == "isotonic":
        x, values = _shrunk_isotonic(p, np.asarray(y, dtype="float64"))
        return Calibrator("isotonic", {"x": x, "y": values})
    return Calibrator()


def _shrunk_isotonic(p: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Isotonic regression whose steps are shrunk towards the overall win rate.

    Each step holds `(wins + k * rate) / (rows + k)` with `k = ISOTONIC_PRIOR` pseudo-deals: a
    step of a few deals that were all lost says "unlikely", not "impossible" (plain isotonic
    says 0 there, and one later win costs a log loss of ~14). Shrinking can break the order of a
    large step and a small one, so the steps are pooled again (weighted by their rows).
    """
    iso = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    levels, inverse, rows = np.unique(iso.predict(p), return_inverse=True, return_counts=True)
    wins = np.bincount(inverse.ravel(), weights=y, minlength=levels.size)
    shrunk = (wins + ISOTONIC_PRIOR * y.mean()) / (rows + ISOTONIC_PRIOR)
    shrunk = IsotonicRegression().fit(levels, shrunk, sample_weight=rows).predict(levels)
    knots = np.asarray(iso.y_thresholds_, dtype="float64")
    nearest = np.abs(levels[None, :] - knots[:, None]).argmin(axis=1)
    values = np.clip(shrunk[nearest], EPS, 1.0 - EPS)
    return [float(v) for v in iso.X_thresholds_], [float(v) for v in values]


@dataclass(frozen=True)
class Calibration:
    """The chosen calibrator, every method's cross-fitted validation log loss, and the chosen
    method's cross-fitted (out-of-fold) validation probabilities."""

    calibrator: Calibrator
    losses: dict[str, float]
    out_of_fold: np.ndarray


def calibrate(
    p: np.ndarray,
    y: np.ndarray,
    seed: int = 42,
    groups: np.ndarray | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> Calibration:
    """Pick none/Platt/isotonic by 2-fold cross-fitted validation log loss.

    Fitting and judging a calibrator on the same rows would always favour isotonic; cross-fitting
    on halves of the validation slice gives an honest comparison. The halves split `groups`
    (opportunities): a deal's examples share its outcome, and a calibrator fitted on some of them
    would know the label of the rest. A calibrator is chosen only if it beats leaving the scores
    as they are with a paired bootstrap interval (over the same groups) above 0, so it never
    makes the held-out log loss worse and a noisy gain on a small slice does not count; among
    those, the lowest loss wins. The winner is refitted on the whole slice.
    """
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    _, group_index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, 2, int(group_index.max()) + 1 if len(y) else 0)[group_index.ravel()]
    losses: dict[str, float] = {}
    held_out: dict[str, np.ndarray] = {}
    for method in CALIBRATION_METHODS:
        out = np.empty(len(y))
        for k in (0, 1):
            fit_rows, eval_rows = fold != k, fold == k
            if not eval_rows.any():
                continue
            if len(np.unique(y[fit_rows])) < 2:  # nothing to fit on: leave the scores
                out[eval_rows] = Calibrator().apply(p[eval_rows])
                continue
            calibrator = fit_calibrator(method, p[fit_rows], y[fit_rows])
            out[eval_rows] = calibrator.apply(p[eval_rows])
        held_out[method] = np.clip(out, EPS, 1 - EPS)
        losses[method] = float(log_loss(y, held_out[method], labels=[0, 1]))
    sure = [
        method
        for method in CALIBRATION_METHODS[1:]
        if losses[method] < losses["none"]
        and paired_gains(
            groups, y, held_out["none"], held_out[method], resamples, confidence, seed
        )["log_loss_gain"].above_zero
    ]
    method = min(sure, key=lambda m: losses[m]) if sure else "none"
    return Calibration(fit_calibrator(method, p, y), losses, held_out[method])


def choose_calibration(
    p: np.ndarray, y: np.ndarray, seed: int = 42
) -> tuple[Calibrator, dict[str, float]]:
    """`calibrate`'s calibrator and cross-fitted losses."""
    chosen = calibrate(p, y, seed)
    return chosen.calibrator, chosen.losses


def final_booster(result: SearchResult) -> xgb.Booster:
    """The booster cut at its best iteration, so every consumer scores with the same trees."""
    return result.model.get_booster()[: result.best_iteration + 1]


@dataclass
class WinProbabilityModel:
    """What is registered: the booster, its feature encoding and its calibration.

    `kind` says which candidate it is (`xgboost`, or `baseline`: one tree per feature holding
    the logistic regression's term). The booster is logged with the MLflow xgboost flavour (its
    pyfunc returns the raw, uncalibrated probability of a row of the encoded matrix); spec,
    calibration and kind travel in the model's metadata, so `registry.load_model` rebuilds
    exactly this object.
    """

    booster: xgb.Booster
    spec: FeatureSpec
    calibrator: Calibrator = field(default_factory=Calibrator)
    kind: str = XGBOOST  # or BASELINE: the logistic regression as an additive booster

    def raw_proba_encoded(self, encoded: pd.DataFrame) -> np.ndarray:
        matrix = xgb.DMatrix(
            encoded, feature_types=self.spec.feature_types, enable_categorical=True
        )
        return self.booster.predict(matrix)

    def raw_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.raw_proba_encoded(self.spec.encode(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated win probability of each row of a feature frame."""
        return self.calibrator.apply(self.raw_proba(frame))

    def importance(self) -> dict[str, float]:
        scores = self.booster.get_score(importance_type="total_gain")
        return {k: float(np.sum(v)) for k, v in scores.items()}

    def metadata(self) -> dict[str, Any]:
        return {
            "feature_spec": self.spec.to_dict(),
            "calibration": self.calibrator.to_dict(),
            "model_kind": self.kind,
        }

    @classmethod
    def from_metadata(cls, booster: xgb.Booster, metadata: dict[str, Any]) -> WinProbabilityModel:
        return cls(
            booster=booster,
            spec=FeatureSpec.from_dict(metadata["feature_spec"]),
            calibrator=Calibrator.from_dict(metadata["calibration"]),
            kind=str(metadata.get("model_kind", XGBOOST)),
        )


def baseline_model(
    train: pd.DataFrame, y: np.ndarray, spec: FeatureSpec
) -> tuple[WinProbabilityModel, float]:
    """The fitted baseline as a `WinProbabilityModel` (registered and served like XGBoost), and
    the largest |logit| difference of its booster form to the pipeline on the training rows."""
    compiled = compile_baseline(fit_baseline(train, y, spec), spec, train)
    return WinProbabilityModel(compiled.booster, spec, kind=BASELINE), compiled.max_abs_error
