"""Product features: daily win/pipeline stats and the static catalogue profile."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Int64, String

from feature_repo.data_sources import product_daily_stats_source, product_profile_source
from feature_repo.entities import product
from feature_repo.features.stats import DAILY_STATS_SCHEMA

product_daily_stats_fv = FeatureView(
    name="product_daily_stats",
    entities=[product],
    ttl=timedelta(days=1),
    schema=DAILY_STATS_SCHEMA,
    source=product_daily_stats_source,
    online=True,
    description="Product sales history as of the end of each day: closes, wins, smoothed "
    "win rates over 30/90/365 days and all time, open pipeline. Dense daily rows.",
    owner="crm-feature-platform",
    tags={"entity": "product", "grain": "daily", "pit": "end-of-day"},
)

product_profile_fv = FeatureView(
    name="product_profile",
    entities=[product],
    ttl=timedelta(0),  # static: valid forever
    schema=[
        Field(name="series", dtype=String, description="Product series (GTX, MG, GTK)."),
        Field(name="sales_price", dtype=Int64, description="List price, USD."),
    ],
    source=product_profile_source,
    online=True,
    description="Static catalogue entry of the product (products).",
    owner="crm-feature-platform",
    tags={"entity": "product", "grain": "static"},
)
