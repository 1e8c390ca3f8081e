"""Opportunity features: who/what the deal is about and its stage over time.

Never close_value or close_date: they are the label. The stage is here for monitoring and
analysis only; `opportunity_scoring_v1` does not serve it.
"""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import String, UnixTimestamp

from feature_repo.data_sources import opportunity_source
from feature_repo.entities import opportunity

opportunity_fv = FeatureView(
    name="opportunity",
    entities=[opportunity],
    ttl=timedelta(0),
    schema=[
        Field(name="sales_agent", dtype=String, description="Owning agent."),
        Field(name="account", dtype=String, description="Customer account (null if unknown)."),
        Field(name="product", dtype=String, description="Product sold."),
        Field(name="sector", dtype=String, description="Account's sector (null if no account)."),
        Field(name="engage_date", dtype=UnixTimestamp, description="Day the deal was engaged."),
        Field(name="deal_stage", dtype=String, description="Stage as of the row's time."),
    ],
    source=opportunity_source,
    online=True,
    description="Opportunity attributes with its stage as of each change: Engaging at the end "
    "of its engage day, the final stage at the end of its close day; Prospecting deals (no "
    "engage date) one row at the snapshot date.",
    owner="crm-feature-platform",
    tags={"entity": "opportunity", "grain": "event"},
)
