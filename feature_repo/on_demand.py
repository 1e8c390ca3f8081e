"""Request-time features: computed when a deal is scored, from the request and stored features."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Int64, UnixTimestamp

from feature_repo.features.product import product_profile_fv

scoring_request = RequestSource(
    name="scoring_request",
    schema=[
        Field(name="engage_date", dtype=UnixTimestamp, description="Null if not engaged yet."),
        Field(name="request_timestamp", dtype=UnixTimestamp, description="When it is scored."),
    ],
    description="What the caller knows at scoring time; in training, request_timestamp is the "
    "label row's event_timestamp.",
    owner="crm-feature-platform",
    tags={"layer": "request"},
)


@on_demand_feature_view(
    sources=[scoring_request, product_profile_fv],
    schema=[
        # No field descriptions: Feast compares them with the inferred (undescribed) outputs.
        Field(name="days_open", dtype=Int64),
        Field(name="list_price_tier", dtype=Int64),
        Field(name="engage_month", dtype=Int64),
        Field(name="engage_quarter_end", dtype=Int64),
    ],
    mode="pandas",
    description="days_open: whole days from engage_date to request_timestamp (0 if not engaged "
    "yet); list_price_tier: 0 below 1,000 USD, 1 below 10,000, else 2; engage_month: month "
    "of engage_date in UTC, 1-12 (0 if not engaged yet); engage_quarter_end: 1 if that month "
    "ends a quarter (Mar/Jun/Sep/Dec), else 0.",
    owner="crm-feature-platform",
    tags={"entity": "opportunity", "grain": "request"},
)
def opportunity_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores and runs this body as source text: imports and constants must live inside.
    import pandas as pd

    low, high = 1_000, 10_000  # list price tier edges, USD
    # cache=False: pandas' cache heuristic walks thousands of values one by one per call.
    engaged = pd.to_datetime(inputs["engage_date"], utc=True, cache=False)
    scored = pd.to_datetime(inputs["request_timestamp"], utc=True, cache=False)
    days = ((scored - engaged).dt.total_seconds() // 86_400).fillna(0).clip(lower=0)
    price = pd.to_numeric(inputs["sales_price"], errors="coerce")
    tier = (price >= low).astype("int64") + (price >= high).astype("int64")
    month = engaged.dt.month.fillna(0).astype("int64")
    return pd.DataFrame(
        {
            "days_open": days.astype("int64"),
            "list_price_tier": tier.astype("int64"),
            "engage_month": month,
            "engage_quarter_end": ((month > 0) & (month % 3 == 0)).astype("int64"),
        }
    )
