"""Product-within-sector features: how a product sells to one industry sector.

A product's fit differs by sector (a product can sell well overall and poorly to retail); the
per-product and per-account rates cannot show that, the per-cell rate can.
"""

from datetime import timedelta

from feast import FeatureView

from feature_repo.data_sources import product_sector_daily_stats_source
from feature_repo.entities import product, sector
from feature_repo.features.stats import DAILY_STATS_SCHEMA

product_sector_daily_stats_fv = FeatureView(
    name="product_sector_daily_stats",
    entities=[product, sector],
    ttl=timedelta(days=1),
    schema=DAILY_STATS_SCHEMA,
    source=product_sector_daily_stats_source,
    online=True,
    description="Sales history of a product to accounts of one sector as of the end of each "
    "day: closes, wins, smoothed win rates over 30/90/365 days and all time, open pipeline. "
    "Dense daily rows for every product x sector.",
    owner="crm-feature-platform",
    tags={"entity": "product,sector", "grain": "daily", "pit": "end-of-day"},
)
