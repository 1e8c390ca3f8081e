"""The explorer's side of the scoring API: where it is, and scores turned into tables.

Scores always come through the HTTP client (`serving.client`), never the scorer in-process, so
the explorer shows what any other API caller would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from feature_repo.feature_services import FULL_NAME_SEP
from infra.settings import Settings
from serving.explorer.errors import ExplorerError, NoData, ServiceDown

if TYPE_CHECKING:
    from serving.client import ScoringClient

ALL_CONTRIBUTIONS = 100  # top_k large enough to get every model feature back
START_HINT = (
    "start it with `make serve` (it loads the `champion` model and the online store: run "
    "`make pipeline` first if nothing is trained yet)"
)


@dataclass(frozen=True)
class ScorerEndpoint:
    url: str
    token: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ScorerEndpoint:
        """`CRM_SCORER_URL` and `CRM_API_TOKEN`, from the environment or `.env`."""
        token = settings.api_token.get_secret_value() if settings.api_token else None
        return cls(url=settings.scorer_url, token=token or None)


def connect(endpoint: ScorerEndpoint, timeout: float = 5.0) -> ScoringClient:
    """A client for a scorer that answered its readiness probe; ServiceDown says why not."""
    try:
        from serving.client import ScoringClient
    except ImportError as exc:
        raise ServiceDown(f"The scoring client is not installed ({exc}).") from exc
    client = ScoringClient(endpoint.url, token=endpoint.token, timeout=timeout)
    ready, reason = client.ready()
    if not ready:
        raise ServiceDown(
            f"The scoring service at {endpoint.url} is not ready ({reason}): " + START_HINT + "."
        )
    return client


def explain(exc: Exception, endpoint: ScorerEndpoint) -> ExplorerError:
    """The client's exception as an explorer error whose message says what to do."""
    from serving.client import InvalidRequest, NotFound, ServiceUnavailable, Unauthorized

    if isinstance(exc, NotFound):
        return NoData(f"{exc}")
    if isinstance(exc, Unauthorized):
        return ServiceDown(
            f"The scoring service at {endpoint.url} refused the token ({exc}): set CRM_API_TOKEN "
            "to the token the service was started with."
        )
    if isinstance(exc, ServiceUnavailable):
        return ServiceDown(
            f"The scoring service at {endpoint.url} is unavailable ({exc}): {START_HINT}."
        )
    if isinstance(exc, InvalidRequest):
        return ExplorerError(f"The scoring service refused the request: {exc}")
    return ServiceDown(f"The scoring service at {endpoint.url} failed ({exc}): {START_HINT}.")


def score_one(client: ScoringClient, opportunity_id: str, as_of: datetime | None = None) -> Any:
    """One deal's score with every feature's contribution (for the chart and the what-if)."""
    return client.score(opportunity_id, as_of=as_of, top_k=ALL_CONTRIBUTIONS)


def shown_value(value: Any) -> str:
    """Feature values as text (mixed types in one column), floats to 4 significant digits."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def view_of(feature: str) -> str:
    """The feature view a model feature comes from (`<view>__<feature>`)."""
    return feature.split(FULL_NAME_SEP, 1)[0] if FULL_NAME_SEP in feature else ""


def contributions_frame(score: Any) -> pd.DataFrame:
    """Each feature's value, its contribution (log-odds) and the event time of its view's row."""
    stamps = dict(score.feature_timestamps or {})
    rows = [
        {
            "feature": c.feature,
            "value": shown_value(c.value),
            "contribution": float(c.contribution),
            "view": view_of(c.feature),
            "event_timestamp": stamps.get(view_of(c.feature)),
        }
        for c in score.contributions
    ]
    columns = ["feature", "value", "contribution", "view", "event_timestamp"]
    frame = pd.DataFrame(rows, columns=columns)
    order = frame["contribution"].abs().sort_values(ascending=False).index
    return frame.loc[order].reset_index(drop=True)


@dataclass(frozen=True)
class Knob:
    """A what-if control for one numeric feature: slider bounds around its current value."""

    feature: str
    value: float
    low: float
    high: float
    step: float
    integer: bool = False


def knobs(score: Any, limit: int = 6) -> list[Knob]:
    """Sliders for the numeric features that move this deal's score most."""
    found: list[Knob] = []
    ranked = sorted(score.contributions, key=lambda c: abs(c.contribution), reverse=True)
    for c in ranked:
        value = c.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        found.append(knob(c.feature, float(value)))
        if len(found) == limit:
            break
    return found


def knob(feature: str, value: float) -> Knob:
    name = feature.rsplit(FULL_NAME_SEP, 1)[-1]
    if "rate" in name:
        return Knob(feature, min(max(value, 0.0), 1.0), 0.0, 1.0, 0.01)
    if "year" in name:
        return Knob(feature, value, value - 50, value + 50, 1.0, integer=True)
    high = max(10.0, abs(value) * 3)
    if float(value).is_integer():
        return Knob(feature, value, min(0.0, value), float(round(high)), 1.0, integer=True)
    return Knob(feature, value, min(0.0, value), high, round(high / 100, 6))


def typed(knob: Knob, value: float) -> float | int:
    """A slider's value with the feature's type (the API refuses a float for an int)."""
    return int(round(value)) if knob.integer else float(value)


def feature_values(score: Any) -> dict[str, Any]:
    """Every feature value the score was computed from (the request for /score_features)."""
    return {c.feature: c.value for c in score.contributions}
