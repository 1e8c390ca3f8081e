"""The schema shared by the three daily stats views (see feature_tables.compute for meanings)."""

from feast import Field
from feast.types import Float64, Int64

WINDOWS = ("30d", "90d", "365d", "all")

DAILY_STATS_SCHEMA = [
    field
    for window in WINDOWS
    for field in (
        Field(name=f"closed_{window}", dtype=Int64, description=f"Deals closed ({window})."),
        Field(name=f"won_{window}", dtype=Int64, description=f"Deals won ({window})."),
        Field(
            name=f"win_rate_{window}",
            dtype=Float64,
            description=f"Win rate ({window}) smoothed toward the global rate, k=10.",
        ),
    )
] + [
    Field(name="open_pipeline_count", dtype=Int64, description="Deals engaged, not yet closed."),
    Field(name="open_pipeline_value", dtype=Int64, description="List price of open deals."),
    Field(name="engaged_30d", dtype=Int64, description="Deals engaged in the last 30 days."),
]
