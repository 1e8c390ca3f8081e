"""Product-within-sector features: how a product sells to one industry sector.

A product's fit differs by sector (a product can sell well overall and poorly to retail); the
per-product and per-account rates cannot show that, the per-cell rate can.
"""

from feature_repo.data_sources import product_sector_daily_stats_source
from feature_repo.entities import product, sector
from feature_repo.features.stats import daily_stats_view

product_sector_daily_stats_fv = daily_stats_view(
    [product, sector],
    product_sector_daily_stats_source,
    "Sales history of a product to accounts of one sector",
    grid=" for every product x sector",
)
