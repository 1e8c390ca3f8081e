"""The daily stats every entity view shares: its windows, its smoothing and its schema.

The one home of these numbers: `feature_tables.compute` builds the tables from them (see its
docstring for the exact meanings) and the views below declare the columns.
"""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Float64, Int64

OWNER = "crm-feature-platform"

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


def daily_stats_view(
    entities: list[Entity], source: FileSource, subject: str, grid: str = ""
) -> FeatureView:
    """`<entity>_daily_stats`: the history of `subject` as of the end of each day.

    Dense daily rows (one per entity and day), hence a one-day TTL.
    """
    names = [entity.name for entity in entities]
    return FeatureView(
        name=f"{'_'.join(names)}_daily_stats",
        entities=entities,
        ttl=timedelta(days=1),
        schema=DAILY_STATS_SCHEMA,
        source=source,
        online=True,
        description=f"{subject} as of the end of each day: closes, wins, smoothed win rates over "
        f"30/90/365 days and all time, open pipeline. Dense daily rows{grid}.",
        owner=OWNER,
        tags={"entity": ",".join(names), "grain": "daily", "pit": "end-of-day"},
    )


def profile_view(
    entity: Entity, source: FileSource, schema: list[Field], description: str
) -> FeatureView:
    """`<entity>_profile`: static attributes, stamped once before every date (never expire)."""
    return FeatureView(
        name=f"{entity.name}_profile",
        entities=[entity],
        ttl=timedelta(0),  # static: valid forever
        schema=schema,
        source=source,
        online=True,
        description=description,
        owner=OWNER,
        tags={"entity": entity.name, "grain": "static"},
    )
