"""File sources on the data lake, one per feature view (`<view>_source`).

Paths here are placeholders (`features/<view>`), relative to no lake in particular: the
definitions read no settings when imported. `feature_repo.definitions.definitions(lake)` points
each source at the object a committed feature build names (one manifest per snapshot commits all
views together), on a real lake: a folder under CRM_HOME, or `s3://<bucket>/...`.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

from infra.layout import FEATURES


def lake_source(view: str, path: str | None = None, s3_endpoint: str | None = None) -> FileSource:
    """The source of `view`, at `path` (default: its lake key, to be relocated)."""
    return FileSource(
        name=f"{view}_source",
        path=path or f"{FEATURES}/{view}",
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        s3_endpoint_override=s3_endpoint,
        description=f"Point-in-time rows of {view}, written by the `features` flow.",
        owner="crm-feature-platform",
        tags={"layer": "features"},
    )


sales_agent_daily_stats_source = lake_source("sales_agent_daily_stats")
account_daily_stats_source = lake_source("account_daily_stats")
product_daily_stats_source = lake_source("product_daily_stats")
product_sector_daily_stats_source = lake_source("product_sector_daily_stats")
sales_agent_profile_source = lake_source("sales_agent_profile")
account_profile_source = lake_source("account_profile")
product_profile_source = lake_source("product_profile")
opportunity_source = lake_source("opportunity")
