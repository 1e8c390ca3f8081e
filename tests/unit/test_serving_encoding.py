"""The serving encoder and request-time features equal training's encoding and Feast's UDF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from serving.encoding import (
    Encoder,
    days_open,
    engage_month,
    engage_quarter_end,
    list_price_tier,
)
from training.features import FeatureSpec


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a__rate": [0.25, None, 1.0, np.nan, 3.5],
            "a__count": [1, 2, 3, 4, 5],
            "b__flag": [True, False, True, False, True],
            "b__sector": ["retail", "software", None, "unknown-level", "retail"],
            "c__series": ["GTX", "MG", "GTX", None, "GTK"],
        }
    )


def test_encoder_equals_feature_spec_encode_in_the_boosters_order() -> None:
    frame = _frame()
    spec = FeatureSpec.infer(frame.iloc[:3], frame.columns)
    # MLflow metadata sorts mapping keys: the booster's order is the truth, not the spec's.
    booster_order = sorted(spec.columns, reverse=True)
    expected = spec.encode(frame)[booster_order].to_numpy()
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    got = Encoder(spec, booster_order).encode(rows)
    np.testing.assert_array_equal(got, expected)  # NaNs in the same places
    assert Encoder(spec, booster_order).feature_types == [
        "c" if c in spec.categorical else "q" for c in booster_order
    ]


def test_encoder_refuses_a_booster_with_other_features() -> None:
    spec = FeatureSpec.infer(_frame(), _frame().columns)
    with pytest.raises(ValueError, match="differ"):
        Encoder(spec, [*spec.columns[:-1], "other"])


def _udf_frame(engage: list, request: list, price: list) -> pd.DataFrame:
    from feature_repo.on_demand import opportunity_request_features

    inputs = pd.DataFrame(
        {
            "engage_date": pd.Series(engage, dtype="object"),
            "request_timestamp": request,
            "sales_price": pd.Series(price, dtype="float64"),
        }
    )
    return opportunity_request_features.feature_transformation.udf(inputs)


def test_request_features_equal_the_on_demand_view() -> None:
    base = datetime(2017, 6, 1, tzinfo=UTC)
    # Month edges: 1 h before June in UTC is May; 23:30 on Mar 31 at UTC-5 is April in UTC.
    late_march_ny = datetime(2017, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    engage = [
        base,
        base,
        None,
        base + timedelta(days=3),
        base,
        base - timedelta(hours=1),
        late_march_ny,
        datetime(2016, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2017, 9, 15, tzinfo=UTC),
        datetime(2017, 1, 1, tzinfo=UTC),
    ]
    request = [
        base,
        base + timedelta(days=10, hours=23, minutes=59),
        base,
        base,  # engaged after the request: clipped to 0
        base + timedelta(days=400),
        base + timedelta(hours=23),
        base,
        base,
        base,
        base,
    ]
    price = [55.0, 999.0, 1_000.0, 9_999.0, 10_000.0, None, 4_821.0, 550.0, 26_768.0, 3_393.0]
    expected = _udf_frame(engage, request, price)
    got_days = [days_open(e, r) for e, r in zip(engage, request, strict=True)]
    got_tiers = [list_price_tier(p) for p in price]
    got_months = [engage_month(e) for e in engage]
    got_quarter_ends = [engage_quarter_end(m) for m in got_months]
    assert got_days == expected["days_open"].tolist()
    assert got_tiers == expected["list_price_tier"].tolist()
    assert got_months == expected["engage_month"].tolist()
    assert got_quarter_ends == expected["engage_quarter_end"].tolist()
    # The cases above cover every value: no engagement, quarter ends and other months.
    assert got_months == [6, 6, 0, 6, 6, 5, 4, 12, 9, 1]
    assert got_quarter_ends == [1, 1, 0, 1, 1, 0, 0, 1, 1, 0]
