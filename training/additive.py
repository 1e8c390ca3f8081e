"""A logistic-regression baseline as an XGBoost booster, so it is registered and served like one.

The registry and the scorer know one kind of model: an XGBoost booster on the encoded matrix
(`FeatureSpec.encode`), with its spec and calibration in the model's metadata. A fitted baseline
pipeline (median-impute + scale numbers, one-hot categoricals, L2 logistic regression) is a sum of
one term per feature, so it can be written as a booster with one tree per feature whose leaves
hold that feature's term on the logit; the intercept is the booster's base score. Then MLflow's
xgboost flavour logs it, `registry.load_model` rebuilds it and the scorer serves it (with
per-feature contributions) without knowing it is linear.

Each tree sends a missing value to a leaf of its own (the imputed value's term, or the
`<missing>` level's). A categorical term is exact: one leaf per training level (an unknown level
is encoded as missing, as for XGBoost). A numeric term is exact for every value seen in training
when the feature has at most `max_steps` distinct values; otherwise it is a step function with
`max_steps` steps (thresholds at training quantiles and on an even grid, so no step is wide), each
step holding the term at the mean training value inside it, and constant beyond the training
range. The steps' error is measured on the training rows (`AdditiveBaseline.max_abs_error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from training.features import FeatureSpec
from training.metrics import EPS

MAX_STEPS = 256
EXTENSION_STEPS = 32
MISSING_LEVEL = "<missing>"
# Every finite float32 is >= this: the root split sends only missing values (default) left.
BELOW_ALL = -3.0e38


@dataclass(frozen=True)
class Term:
    """One feature's contribution to the logit: a step function plus a value for missing."""

    thresholds: np.ndarray  # increasing; interval i is [thresholds[i-1], thresholds[i])
    values: np.ndarray  # len(thresholds) + 1 leaf values
    covers: np.ndarray  # training rows per interval (for per-feature contributions)
    missing: float
    missing_cover: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype="float32")
        out = self.values[np.searchsorted(self.thresholds, x, side="right")]
        return np.where(np.isnan(x), self.missing, out)


@dataclass(frozen=True)
class AdditiveBaseline:
    booster: xgb.Booster
    intercept: float
    terms: dict[str, Term]
    max_abs_error: float  # largest |logit difference| to the pipeline on the training rows


def linear_step_term(
    x: np.ndarray,
    slope: float,
    center: float,
    missing: float,
    max_steps: int = MAX_STEPS,
    extension: int = EXTENSION_STEPS,
) -> Term:
    """`slope * (x - center)` as a step function fitted to a feature's training values `x`.

    Inside the training range: a step per distinct value (every integer, for integer features
    with a small span), or `max_steps` steps at quantiles and on an even grid; each holds the
    term at the mean training value inside it (exact at a step's only value). Beyond the range,
    `extension` steps on each side reach one more range, so the line is followed there too;
    further out the term stays constant.
    """
    x = np.asarray(x, dtype="float32")
    seen = ~np.isnan(x)
    xs = x[seen].astype("float64")
    unique = np.unique(xs)
    if unique.size == 0 or slope == 0:
        empty = np.zeros(0, dtype="float32")
        return Term(
            empty, np.zeros(1), np.array([float(seen.sum())]), missing, float((~seen).sum())
        )
    lo, hi = float(unique[0]), float(unique[-1])
    integral = bool(np.all(unique == np.round(unique)))
    if integral and hi - lo <= max_steps:
        inner = np.arange(lo + 1.0, hi + 1.0)  # every integer of the range: exact there
    elif unique.size <= max_steps:
        inner = unique[1:]
    else:
        half = max_steps // 2
        quantiles = np.quantile(xs, np.linspace(0, 1, half + 1)[1:-1], method="higher")
        grid = np.linspace(lo, hi, half + 1)[1:-1]
        inner = np.concatenate([quantiles, grid])
        inner = inner[inner > lo]
    width = max((hi - lo) / extension, 1e-12)
    if integral:
        width = max(1.0, float(np.ceil(width)))
    steps = np.arange(1, extension + 1) * width
    thresholds = np.unique(np.concatenate([lo - steps[::-1], inner, hi + steps]).astype("float32"))
    which = np.searchsorted(thresholds, xs.astype("float32"), side="right")
    n = thresholds.size + 1
    covers = np.bincount(which, minlength=n).astype("float64")
    sums = np.bincount(which, weights=xs, minlength=n)
    edges = thresholds.astype("float64")
    lower = np.concatenate([[edges[0] - width], edges])  # each step's lower end
    upper = np.concatenate([edges, [edges[-1] + width]])
    empty_point = lower if integral else (lower + upper) / 2
    point = np.where(covers > 0, sums / np.maximum(covers, 1.0), empty_point)
    return Term(thresholds, slope * (point - center), covers, float(missing), float((~seen).sum()))


def linear_terms(
    pipeline: Pipeline, spec: FeatureSpec, train: pd.DataFrame, max_steps: int = MAX_STEPS
) -> tuple[float, dict[str, Term]]:
    """The intercept and one `Term` per spec column of a fitted `models.fit_baseline` pipeline."""
    columns = pipeline.named_steps["columns"]
    logreg = pipeline.named_steps["logreg"]
    coef = logreg.coef_[0]  # the numeric block's columns first, then each one-hot block
    encoded = spec.encode(train)
    terms: dict[str, Term] = {}

    numeric = columns.named_transformers_["numeric"]
    imputer, scaler = numeric.steps[0][1], numeric.steps[1][1]
    kept = list(imputer.get_feature_names_out(list(spec.numeric)))
    for name in spec.numeric:
        x = encoded[name].to_numpy()
        if name not in kept:  # no value in training: the pipeline dropped it, it adds nothing
            terms[name] = linear_step_term(x, 0.0, 0.0, 0.0, max_steps)
            continue
        i = kept.index(name)
        w = float(coef[i] / scaler.scale_[i])
        mean, median = float(scaler.mean_[i]), float(imputer.statistics_[i])
        terms[name] = linear_step_term(x, w, mean, w * (median - mean), max_steps)

    onehot = columns.named_transformers_["categorical"].steps[-1][1]
    offset = len(kept)
    for j, name in enumerate(spec.categorical):
        categories = onehot.categories_[j]
        level_weight: dict[str, float] = {}
        missing = 0.0
        for category, weight in zip(categories, coef[offset:], strict=False):
            if _is_missing(category):
                missing = float(weight)
            else:
                level_weight[str(category)] = float(weight)
        offset += len(categories)
        levels = spec.categorical[name]
        codes = encoded[name].to_numpy()
        seen = ~np.isnan(codes)
        terms[name] = Term(
            thresholds=np.arange(1, len(levels), dtype="float32"),  # codes 0, 1, ...: exact
            values=np.array([level_weight.get(level, 0.0) for level in levels]),
            covers=np.bincount(codes[seen].astype(int), minlength=len(levels)).astype("float64"),
            missing=missing,
            missing_cover=float((~seen).sum()),
        )
    if offset != coef.size:
        raise ValueError(f"Baseline has {coef.size} coefficients, its columns {offset}.")
    return float(logreg.intercept_[0]), terms


def _is_missing(category: object) -> bool:
    """The one-hot category of a missing value: None (how the pipeline passes it) or the
    imputer's fill value."""
    if category is None or category == MISSING_LEVEL:
        return True
    return isinstance(category, float) and bool(np.isnan(category))


def compile_baseline(
    pipeline: Pipeline, spec: FeatureSpec, train: pd.DataFrame, max_steps: int = MAX_STEPS
) -> AdditiveBaseline:
    """The fitted baseline pipeline as a booster over `spec.encode`'s matrix (see module doc)."""
    intercept, terms = linear_terms(pipeline, spec, train, max_steps)
    booster = additive_booster(intercept, terms, spec)
    encoded = spec.encode(train)
    stepped = intercept + sum(terms[c](encoded[c].to_numpy()) for c in spec.columns)
    exact = pipeline.decision_function(spec.baseline_frame(train))
    return AdditiveBaseline(
        booster, intercept, terms, float(np.max(np.abs(stepped - exact), initial=0.0))
    )


def additive_booster(intercept: float, terms: dict[str, Term], spec: FeatureSpec) -> xgb.Booster:
    """A binary:logistic booster whose margin is `intercept + sum(term(x))`, one tree per term."""
    n = len(spec.columns)
    trees = [
        _tree(i, spec.columns.index(name), term, n) for i, (name, term) in enumerate(terms.items())
    ]
    base_score = float(np.clip(1.0 / (1.0 + np.exp(-intercept)), EPS, 1 - EPS))
    model = {
        "learner": {
            "attributes": {},
            "feature_names": spec.columns,
            "feature_types": spec.feature_types,
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {
                        "num_parallel_tree": "1",
                        "num_trees": str(len(trees)),
                    },
                    "iteration_indptr": list(range(len(trees) + 1)),
                    "tree_info": [0] * len(trees),
                    "trees": trees,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": f"[{base_score!r}]",
                "boost_from_average": "1",
                "num_class": "0",
                "num_feature": str(len(spec.columns)),
                "num_target": "1",
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [int(v) for v in xgb.__version__.split(".")[:3]],
    }
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    return booster


def _tree(tree_id: int, feature: int, term: Term, n_features: int) -> dict[str, object]:
    """Root: missing -> leaf `term.missing`; present -> a balanced tree over the steps.

    Nodes are numbered breadth first with siblings side by side, as XGBoost lays out its own
    trees (its predictor relies on it).
    """
    last = len(term.values) - 1
    # A node is the range of intervals it covers; the missing leaf is the range (-1, -1).
    ranges: list[tuple[int, int]] = [(-2, -2)]  # the root
    children: list[tuple[int, int]] = []
    i = 0
    while i < len(ranges):
        lo, hi = ranges[i]
        if (lo, hi) == (-2, -2):
            kids = [(-1, -1), (0, last)]
        elif lo < hi:
            mid = (lo + hi + 1) // 2  # intervals lo..mid-1 go left: x < thresholds[mid - 1]
            kids = [(lo, mid - 1), (mid, hi)]
        else:
            kids = []
        children.append((len(ranges), len(ranges) + 1) if kids else (-1, -1))
        ranges.extend(kids)
        i += 1

    nodes: list[dict[str, float | int]] = []
    for (lo, _), (left, right) in zip(ranges, children, strict=True):
        if left == -1:  # a leaf: the term's value on its interval, or for missing
            missing = lo == -1
            value = term.missing if missing else float(term.values[lo])
            cover = term.missing_cover if missing else float(term.covers[lo])
            nodes.append({"left": -1, "right": -1, "cond": value, "cover": cover, "leaf": 1})
        elif lo == -2:
            nodes.append({"left": left, "right": right, "cond": BELOW_ALL, "default_left": 1})
        else:
            cond = float(term.thresholds[ranges[right][0] - 1])
            nodes.append({"left": left, "right": right, "cond": cond})
    for n in reversed(nodes):  # children come after their parent: fill covers bottom up
        if n.get("leaf"):
            n["mean"] = n["cond"]
            continue
        a, b = nodes[int(n["left"])], nodes[int(n["right"])]
        n["cover"] = a["cover"] + b["cover"]
        n["mean"] = (
            (a["cover"] * a["mean"] + b["cover"] * b["mean"]) / n["cover"] if n["cover"] else 0.0
        )
        n["gain"] = sum(c["cover"] * (c["mean"] - n["mean"]) ** 2 for c in (a, b))

    parents = [2147483647] * len(nodes)
    for i, n in enumerate(nodes):
        for child in (n["left"], n["right"]):
            if child != -1:
                parents[int(child)] = i
    count = len(nodes)
    return {
        "base_weights": [float(n["cond"]) if n.get("leaf") else 0.0 for n in nodes],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [int(n.get("default_left", 0)) for n in nodes],
        "id": tree_id,
        "left_children": [int(n["left"]) for n in nodes],
        "loss_changes": [float(n.get("gain", 0.0)) for n in nodes],
        "parents": parents,
        "right_children": [int(n["right"]) for n in nodes],
        "split_conditions": [float(n["cond"]) for n in nodes],
        "split_indices": [0 if n.get("leaf") else feature for n in nodes],
        "split_type": [0] * count,
        # a little cover on every node: per-feature contributions divide by it
        "sum_hessian": [max(float(n["cover"]), 1e-6) for n in nodes],
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(n_features),
            "num_nodes": str(count),
            "size_leaf_vector": "1",
        },
    }
