"""Request and response bodies of the scoring API, shared by the service and `serving.client`.

Changing a field here changes the public contract the explorer and the client rely on: add
optional fields, never rename or remove one without a new version.

Inputs are bounded so that anything the schema accepts can be scored: times within
`EARLIEST`..`LATEST` (UTC), finite numbers within float32 (XGBoost's own type), text that is valid
Unicode and short, and every list and mapping limited in length.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from infra.clock import utc

MAX_BATCH = 1_000
DEFAULT_TOP_K = 5
MAX_FEATURES = 500  # names in one what-if body (a model has a few dozen)
MAX_TEXT = 200  # characters of a feature name or a categorical value
# XGBoost scores float32: a larger number would turn into inf inside the model.
MAX_NUMBER = 3.4e38
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _unicode(value: str) -> str:
    """Refuse lone surrogates ("\\ud800" in JSON): they cannot be stored nor written back."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate)") from None
    return value


def _sane_time(value: datetime | None) -> datetime | None:
    """A scoring time between 1970 and 2100 (UTC); a naive time is read as UTC."""
    if value is None:
        return None
    try:
        moment = utc(value)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError(
            f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC), e.g. "
            "2017-11-15T08:00:00Z"
        )
    return value


Text = Annotated[str, AfterValidator(_unicode)]
OpportunityId = Annotated[Text, Field(min_length=1, max_length=64, examples=["OPP-00001"])]
FeatureName = Annotated[Text, Field(min_length=1, max_length=MAX_TEXT)]
AsOf = Annotated[
    datetime | None,
    AfterValidator(_sane_time),
    Field(
        default=None,
        description="Scoring time for request-time features (days_open), between 1970 and "
        "2100. Default: the start of the day after the newest materialised daily stats, as in "
        "training.",
    ),
]
TopK = Annotated[int, Field(default=DEFAULT_TOP_K, ge=0, le=100, description="Contributions kept.")]
# A number the model can take: finite, within float32.
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_NUMBER, le=MAX_NUMBER)]
# What a response echoes (a feature's value as served).
FeatureValue = float | int | bool | str | None


def _feature_input(value: object) -> FeatureValue:
    """One what-if value: null, a boolean, a finite number within float32, or a short text
    (the champion's spec then checks the name, the type and the category level)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        # int vs float comparisons are exact in Python: no overflow for a huge int
        if -MAX_NUMBER <= value <= MAX_NUMBER and (isinstance(value, int) or math.isfinite(value)):
            return value
        raise ValueError(f"must be a finite number between -{MAX_NUMBER:g} and {MAX_NUMBER:g}")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        return _unicode(value)
    raise ValueError("must be a number, a boolean, a text or null")


FeatureInput = Annotated[
    FeatureValue,
    PlainValidator(_feature_input),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
                {"type": "boolean"},
                {"type": "string", "maxLength": MAX_TEXT},
                {"type": "null"},
            ]
        }
    ),
]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity_id: OpportunityId
    as_of: AsOf = None
    top_k: TopK = DEFAULT_TOP_K


class BatchScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity_ids: list[OpportunityId] = Field(min_length=1, max_length=MAX_BATCH)
    as_of: AsOf = None
    top_k: TopK = DEFAULT_TOP_K


class FeaturesRequest(BaseModel):
    """What-if scoring: explicit values by model feature name (GET /model_features lists them).

    Missing features are scored as missing (XGBoost's default branch); unknown names, wrong
    types and unknown category levels are refused with 422 naming the field.
    """

    model_config = ConfigDict(extra="forbid")

    features: dict[FeatureName, FeatureInput] = Field(min_length=1, max_length=MAX_FEATURES)
    list_price: float | None = Field(
        default=None,
        ge=0,
        le=1e12,
        allow_inf_nan=False,
        description="For expected_value; default: the product profile's price.",
    )
    top_k: TopK = DEFAULT_TOP_K


class Contribution(BaseModel):
    feature: str
    value: FeatureValue
    contribution: float = Field(description="XGBoost pred_contribs: log-odds of the raw model.")


class Score(BaseModel):
    """One scored opportunity (or what-if row, then `opportunity_id` is None)."""

    opportunity_id: str | None
    win_probability: float = Field(ge=0, le=1, description="Calibrated probability of Won.")
    expected_value: float | None = Field(description="win_probability × list_price (USD).")
    list_price: float | None
    contributions: list[Contribution]
    base_margin: float | None = Field(
        default=None, description="Bias term of the contributions (log-odds); None if top_k=0."
    )
    model_name: str
    model_version: str
    as_of: datetime | None
    feature_timestamps: dict[str, datetime | None] = Field(
        description="Event time of the row each feature view served (freshness)."
    )
    profile: str


class BatchScoreResponse(BaseModel):
    scores: list[Score]


class ModelFeatures(BaseModel):
    model_name: str
    model_version: str
    numeric: list[str]
    categorical: dict[str, list[str]]


class ErrorBody(BaseModel):
    """Every error the service answers, whatever the route or status."""

    error: str = Field(description="What happened and what to do.")
    detail: object | None = None
    request_id: str | None = Field(
        default=None, description="Also the X-Request-ID header; the service log names it."
    )
