"""The daily stats every entity view shares: its windows, its smoothing and its schema.

The one home of these numbers: `feature_tables.compute` builds the tables from them (see its
docstring for the exact meanings) and the views below declare the columns.
"""

from feast import Field
from feast.types import Float64, Int64

WINDOW_DAYS: tuple[int, ...] = (30, 90, 365)
ALL_TIME = "all"
WINDOWS: tuple[str, ...] = (*(f"{days}d" for days in WINDOW_DAYS), ALL_TIME)
# Win rates are smoothed toward the global rate: (won + K * global) / (closed + K).
SMOOTHING_K = 10
# The global rate before any deal has closed.
GLOBAL_PRIOR = 0.5

DAILY_STATS_SCHEMA = [
    field
    for window in WINDOWS
    for field in (
        Field(name=f"closed_{window}", dtype=Int64, description=f"Deals closed ({window})."),
        Field(name=f"won_{window}", dtype=Int64, description=f"Deals won ({window})."),
        Field(
            name=f"win_rate_{window}",
            dtype=Float64,
            description=f"Win rate ({window}) smoothed toward the global rate, k={SMOOTHING_K}.",
        ),
    )
] + [
    Field(name="open_pipeline_count", dtype=Int64, description="Deals engaged, not yet closed."),
    Field(name="open_pipeline_value", dtype=Int64, description="List price of open deals."),
    Field(name="engaged_30d", dtype=Int64, description="Deals engaged in the last 30 days."),
]
