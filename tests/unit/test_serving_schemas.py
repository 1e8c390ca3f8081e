"""The request bodies refuse what the scorer cannot score (issue 12, 1): a clear 422, not a 500.

Each case used to pass validation and then break scoring (or answering) for its whole batch:
a time that overflows when converted to UTC, numbers XGBoost turns into inf, text that cannot be
written back as JSON, unbounded mappings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from serving.schemas import (
    MAX_FEATURES,
    BatchScoreRequest,
    ErrorBody,
    FeaturesRequest,
    ScoreRequest,
)


@pytest.mark.parametrize(
    "as_of",
    [
        "0001-01-01T00:00:00+14:00",  # the poisoned request of the issue: year 0 in UTC
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
        "1900-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_as_of_outside_1970_2100_is_refused_naming_the_field(as_of: str) -> None:
    for model, body in (
        (ScoreRequest, {"opportunity_id": "A"}),
        (BatchScoreRequest, {"opportunity_ids": ["A"]}),
    ):
        with pytest.raises(ValidationError) as caught:
            model.model_validate_json(json.dumps({**body, "as_of": as_of}))
        assert caught.value.errors()[0]["loc"] == ("as_of",)
        assert "between 1970-01-01 and 2100-01-01" in str(caught.value)


def test_sane_times_pass_naive_ones_as_utc() -> None:
    aware = ScoreRequest.model_validate({"opportunity_id": "A", "as_of": "2017-11-15T08:00Z"})
    assert aware.as_of == datetime(2017, 11, 15, 8, tzinfo=UTC)
    naive = ScoreRequest.model_validate({"opportunity_id": "A", "as_of": "2099-12-31T23:00"})
    assert naive.as_of == datetime(2099, 12, 31, 23)


@pytest.mark.parametrize(
    "raw", ["1e39", "-1e39", "Infinity", "-Infinity", "NaN", "9" * 400, "[1]", '{"a": 1}']
)
def test_what_if_values_the_model_cannot_take_are_refused(raw: str) -> None:
    body = '{"features": {"sales_agent_daily_stats__win_rate_all": ' + raw + "}}"
    with pytest.raises(ValidationError) as caught:
        FeaturesRequest.model_validate(json.loads(body))
    (error,) = caught.value.errors()  # one clear message per field, not one per type tried
    assert error["loc"] == ("features", "sales_agent_daily_stats__win_rate_all")


@pytest.mark.parametrize("value", [0, -3, 0.5, 3.3e38, True, False, None, "Retail", "5"])
def test_what_if_values_within_bounds_keep_their_type(value: object) -> None:
    parsed = FeaturesRequest.model_validate({"features": {"f": value}})
    assert parsed.features["f"] == value and type(parsed.features["f"]) is type(value)


def test_lone_surrogates_are_refused_everywhere_text_comes_in() -> None:
    bad = json.loads('"x\\ud800"')
    for model, body in (
        (ScoreRequest, {"opportunity_id": bad}),
        (BatchScoreRequest, {"opportunity_ids": ["A", bad]}),
        (FeaturesRequest, {"features": {bad: 1}}),
        (FeaturesRequest, {"features": {"f": bad}}),
    ):
        with pytest.raises(ValidationError, match="lone surrogate"):
            model.model_validate(body)


def test_sizes_are_bounded() -> None:
    with pytest.raises(ValidationError, match="at most 500"):
        FeaturesRequest.model_validate({"features": {f"f{i}": 1 for i in range(MAX_FEATURES + 1)}})
    with pytest.raises(ValidationError):
        FeaturesRequest.model_validate({"features": {"f": "x" * 201}})
    with pytest.raises(ValidationError):
        BatchScoreRequest.model_validate({"opportunity_ids": ["A"] * 1001})
    for price in (float("inf"), float("nan"), 1e13, -1):
        with pytest.raises(ValidationError):
            FeaturesRequest.model_validate({"features": {"f": 1}, "list_price": price})


def test_the_openapi_schema_states_the_bounds() -> None:
    """Clients and fuzzers read the limits from the schema (/docs.json)."""
    features = FeaturesRequest.model_json_schema()["properties"]["features"]
    assert features["maxProperties"] == MAX_FEATURES
    number = features["additionalProperties"]["anyOf"][0]
    assert number["type"] == "number" and number["maximum"] == 3.4e38
    assert "request_id" in ErrorBody.model_json_schema()["properties"]
