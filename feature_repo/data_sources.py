"""File sources on the data lake, one per feature view (`<view>_source`).

The location follows the active profile (`CRM_PROFILE`, `CRM_HOME`): an absolute path under
`.crm/lake/data-lake/features/` locally, `s3://data-lake/features/` on the stack and in prod.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

from feature_tables.compute import feature_key
from infra.lake import Lake
from infra.settings import get_settings


def lake_source(view: str) -> FileSource:
    settings = get_settings()
    return FileSource(
        name=f"{view}_source",
        path=Lake.from_settings(settings).uri(feature_key(view)),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        s3_endpoint_override=settings.s3_endpoint_url if settings.uses_s3 else None,
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
