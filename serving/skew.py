"""Training/serving skew: do the served features equal what the offline path computes?

A sample of the prediction log (`serving.prediction_log`) is recomputed offline: the same deals
(their logged join keys and engage date) at the same request time (`as_of`) through Feast's
`get_historical_features` on the scoring feature service, the path training and batch scoring
take. Each logged feature is compared with its offline value, by the type the model gives it:
numbers within a tolerance, categories as the same text, a null equal only to a null. The report
gives each feature's mismatch rate and a few examples; on a healthy platform every rate is 0.

A mismatch means the online and offline paths disagree for that feature: an online row not
refreshed after the offline data changed (a missed materialisation), an encoding change on one
side, or a request-time feature computed differently in the scorer and the on-demand view.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feature_repo.entities import DEAL_KEYS, OPPORTUNITY_ID
from infra.settings import Settings
from serving.errors import ServingError
from serving.prediction_log import feature_columns
from training.examples import historical_features
from training.features import TIMESTAMP

if TYPE_CHECKING:
    from feast import FeatureStore

REL_TOLERANCE = 1e-6  # numbers: |served - offline| <= ABS + REL * |offline| is equal
ABS_TOLERANCE = 1e-9
EXAMPLES = 5  # mismatches shown per feature
ROW = "_log_row"  # carried through Feast to join the offline values back to their log row


class SkewError(ServingError):
    """The served log cannot be recomputed (say what is missing)."""


@dataclass
class FeatureSkew:
    feature: str
    kind: str  # numeric | categorical
    compared: int
    mismatches: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass
class SkewReport:
    sampled: int
    features: dict[str, FeatureSkew]
    missing_offline: list[str] = field(default_factory=list)  # logged, not in the service now

    @property
    def rates(self) -> dict[str, float]:
        return {name: f.rate for name, f in self.features.items()}

    @property
    def skewed(self) -> list[str]:
        """Features with at least one mismatch, worst first."""
        return sorted((n for n, f in self.features.items() if f.mismatches), key=self._worst)

    def _worst(self, name: str) -> tuple[float, str]:
        return (-self.features[name].rate, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled,
            "skewed": self.skewed,
            "missing_offline": self.missing_offline,
            "features": {
                name: {**asdict(f), "rate": f.rate} for name, f in sorted(self.features.items())
            },
        }


def skew_report(
    settings: Settings,
    log: pd.DataFrame,
    sample: int = 500,
    seed: int = 0,
    *,
    store: FeatureStore | None = None,
) -> SkewReport:
    """Recompute `sample` rows of the served `log` offline and compare them feature by feature.

    `store`: the feature store to recompute with (default: the profile's, following the current
    feature build, the one the online store was materialised from).
    """
    if log.empty:
        return SkewReport(0, {})
    missing = [c for c in (OPPORTUNITY_ID, *DEAL_KEYS, "engage_date", "as_of") if c not in log]
    if missing:
        raise SkewError(
            f"The log has no {', '.join(missing)} column: read it with "
            "serving.prediction_log.read_prediction_log."
        )
    rows = log.sample(n=min(sample, len(log)), random_state=seed).reset_index(drop=True)
    if store is None:
        from feature_tables.store import feature_store

        store = feature_store(settings)
    offline = historical_features(store, _entities(rows)).set_index(ROW).sort_index()
    features = feature_columns(rows)
    report = SkewReport(len(rows), {}, [f for f in features if f not in offline.columns])
    for name in features:
        if name in offline.columns:
            report.features[name] = _compare(name, rows, offline[name])
    return report


def _entities(rows: pd.DataFrame) -> pd.DataFrame:
    """The entity frame training uses (`training.examples.entity_frame`), from the log's rows."""
    as_of = pd.to_datetime(rows["as_of"], utc=True)
    frame = pd.DataFrame({OPPORTUNITY_ID: rows[OPPORTUNITY_ID].astype(str)})
    for key in DEAL_KEYS:
        frame[key] = rows[key].astype(object).where(rows[key].notna(), None)
    frame[TIMESTAMP] = as_of
    frame["engage_date"] = pd.to_datetime(rows["engage_date"], utc=True)
    frame["request_timestamp"] = as_of
    frame[ROW] = np.arange(len(rows))
    return frame


def _compare(name: str, rows: pd.DataFrame, offline: pd.Series) -> FeatureSkew:
    served = rows[name]
    numeric = pd.api.types.is_float_dtype(served)  # the log keeps categories as text
    skew = FeatureSkew(name, "numeric" if numeric else "categorical", len(rows), 0)
    for n, value in enumerate(served):
        expected = offline.iloc[n]
        if _equal(value, expected, numeric):
            continue
        skew.mismatches += 1
        if len(skew.examples) < EXAMPLES:
            skew.examples.append(
                {
                    OPPORTUNITY_ID: rows[OPPORTUNITY_ID].iloc[n],
                    "as_of": pd.Timestamp(rows["as_of"].iloc[n]).isoformat(),
                    "served": _plain(value),
                    "offline": _plain(expected),
                }
            )
    return skew


def _equal(served: Any, offline: Any, numeric: bool) -> bool:
    if _null(served) or _null(offline):
        return _null(served) and _null(offline)
    if numeric:
        try:
            a, b = float(served), float(offline)
        except (TypeError, ValueError):
            return False
        return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    return _text(served) == _text(offline)


def _null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _text(value: Any) -> str:
    """A category as text, as the model's encoder compares it (3.0 read back from a nullable
    integer column is the category "3")."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _plain(value: Any) -> Any:
    if _null(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
