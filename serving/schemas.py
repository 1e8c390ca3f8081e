"""Request and response bodies of the scoring API, shared by the service and `serving.client`.

Changing a field here changes the public contract the explorer and the client rely on: add
optional fields, never rename or remove one without a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 1_000
DEFAULT_TOP_K = 5

OpportunityId = Annotated[str, Field(min_length=1, max_length=64, examples=["OPP-00001"])]
FeatureValue = float | int | bool | str | None


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity_id: OpportunityId
    as_of: datetime | None = Field(
        default=None,
        description="Scoring time for request-time features (days_open). Default: the start of "
        "the day after the newest materialised daily stats, as in training.",
    )
    top_k: int = Field(default=DEFAULT_TOP_K, ge=0, le=100, description="Contributions kept.")


class BatchScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunity_ids: list[OpportunityId] = Field(min_length=1, max_length=MAX_BATCH)
    as_of: datetime | None = None
    top_k: int = Field(default=DEFAULT_TOP_K, ge=0, le=100)


class FeaturesRequest(BaseModel):
    """What-if scoring: explicit values by model feature name (GET /model_features lists them).

    Missing features are scored as missing (XGBoost's default branch); unknown names, wrong
    types and unknown category levels are refused with 422 naming the field.
    """

    model_config = ConfigDict(extra="forbid")

    features: dict[str, FeatureValue] = Field(min_length=1)
    list_price: float | None = Field(
        default=None, ge=0, description="For expected_value; default: the product profile's price."
    )
    top_k: int = Field(default=DEFAULT_TOP_K, ge=0, le=100)


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
    error: str
    detail: object | None = None
