"""Skill against the base rate and paired differences, with bootstrap intervals over opportunities.

A model is only worth serving if it beats always predicting the training win rate (the base
rate) on the test window: the Brier skill score `1 - Brier / base-rate Brier` and the log-loss
skill `1 - log loss / base-rate log loss` say by how much (0: no better, < 0: worse).

The test window holds several as-of examples per opportunity (one every 30 days while it was
open) and they share one outcome, so examples are not independent: the intervals resample
*opportunities* (with all their examples), never single examples. Every function here is pure,
seeded and vectorised: 1,000 resamples of a few thousand opportunities take milliseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from training.metrics import EPS

# Resample matrices are built in chunks of at most this many cells (memory stays ~40 MB).
CHUNK_CELLS = 5_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def above_zero(self) -> bool:
        """True if the whole interval lies above 0."""
        return self.low > 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def brier_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Squared error of each prediction (their mean is the Brier score)."""
    return (np.asarray(p, dtype="float64") - np.asarray(y, dtype="float64")) ** 2


def log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Log loss of each prediction, probabilities clipped to [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1.0 - EPS)
    y = np.asarray(y, dtype="float64")
    return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def skill_score(losses: np.ndarray, reference_losses: np.ndarray) -> float:
    """`1 - mean(losses) / mean(reference_losses)` over the same examples."""
    return float(1.0 - np.sum(losses) / np.sum(reference_losses))


def group_sums(groups: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """Per group (e.g. opportunity): the number of examples, then the sum of each `values`.

    Shape (n_groups, 1 + len(values)); the order of the groups does not matter to a bootstrap.
    """
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    inverse = inverse.ravel()
    n_groups = int(inverse.max()) + 1 if inverse.size else 0
    columns = [np.bincount(inverse, minlength=n_groups).astype("float64")]
    columns += [np.bincount(inverse, weights=v, minlength=n_groups) for v in values]
    return np.column_stack(columns)


def resampled_sums(per_group: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column sums of `per_group` over `resamples` bootstrap draws of its rows (groups).

    Each draw takes as many groups as there are, with replacement; shape (resamples, columns).
    """
    n_groups = per_group.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, per_group.shape[1]))
    chunk = max(1, CHUNK_CELLS // max(n_groups, 1))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        drawn = rng.integers(0, n_groups, (size, n_groups))
        offsets = (np.arange(size) * n_groups)[:, None]
        counts = np.bincount((drawn + offsets).ravel(), minlength=size * n_groups)
        out[start : start + size] = counts.reshape(size, n_groups) @ per_group
    return out


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def skill_intervals(
    groups: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    base_rate: float,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> dict[str, Interval]:
    """Brier skill and log-loss skill of `p` against the constant `base_rate`, with intervals.

    Both skills are computed on the same resampled opportunities, so they can be read together.
    """
    reference = np.full(len(y), float(base_rate))
    sums = group_sums(
        groups, brier_losses(y, p), brier_losses(y, reference), log_losses(y, p),
        log_losses(y, reference),
    )  # fmt: skip
    draws = resampled_sums(sums, resamples, seed)
    total = sums.sum(axis=0)
    out = {}
    for name, (model, ref) in {"brier_skill": (1, 2), "log_loss_skill": (3, 4)}.items():
        estimate = 1.0 - total[model] / total[ref]
        out[name] = _interval(estimate, 1.0 - draws[:, model] / draws[:, ref], confidence)
    return out


def paired_gains(
    groups: np.ndarray,
    y: np.ndarray,
    p_reference: np.ndarray,
    p_candidate: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> dict[str, Interval]:
    """How much lower the candidate's Brier and log loss are than the reference's, same examples.

    Positive = the candidate is better. Paired: each resample takes the same opportunities for
    both models, so what the two share (hard or easy deals) cancels out of the difference.
    """
    sums = group_sums(
        groups,
        brier_losses(y, p_reference) - brier_losses(y, p_candidate),
        log_losses(y, p_reference) - log_losses(y, p_candidate),
    )
    draws = resampled_sums(sums, resamples, seed)
    total = sums.sum(axis=0)
    out = {}
    for name, column in {"brier_gain": 1, "log_loss_gain": 2}.items():
        estimate = total[column] / total[0]
        out[name] = _interval(estimate, draws[:, column] / draws[:, 0], confidence)
    return out
