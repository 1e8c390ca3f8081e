"""Product features: daily win/pipeline stats and the static catalogue profile."""

from feast import Field
from feast.types import Int64, String

from feature_repo.data_sources import product_daily_stats_source, product_profile_source
from feature_repo.entities import product
from feature_repo.features.stats import daily_stats_view, profile_view

product_daily_stats_fv = daily_stats_view(
    [product], product_daily_stats_source, "Product sales history"
)

product_profile_fv = profile_view(
    product,
    product_profile_source,
    [
        Field(name="series", dtype=String, description="Product series (GTX, MG, GTK)."),
        Field(name="sales_price", dtype=Int64, description="List price, USD."),
    ],
    "Static catalogue entry of the product (products).",
)
