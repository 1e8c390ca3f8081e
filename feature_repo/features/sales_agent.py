"""Sales agent features: daily win/pipeline stats and the static team profile."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import String

from feature_repo.data_sources import sales_agent_daily_stats_source, sales_agent_profile_source
from feature_repo.entities import sales_agent
from feature_repo.features.stats import DAILY_STATS_SCHEMA

sales_agent_daily_stats_fv = FeatureView(
    name="sales_agent_daily_stats",
    entities=[sales_agent],
    ttl=timedelta(days=1),
    schema=DAILY_STATS_SCHEMA,
    source=sales_agent_daily_stats_source,
    online=True,
    description="Agent track record as of the end of each day: closes, wins, smoothed win "
    "rates over 30/90/365 days and all time, open pipeline. Dense daily rows.",
    owner="crm-feature-platform",
    tags={"entity": "sales_agent", "grain": "daily", "pit": "end-of-day"},
)

sales_agent_profile_fv = FeatureView(
    name="sales_agent_profile",
    entities=[sales_agent],
    ttl=timedelta(0),  # static: valid forever
    schema=[
        Field(name="manager", dtype=String, description="The agent's manager."),
        Field(name="regional_office", dtype=String, description="Central, East or West."),
    ],
    source=sales_agent_profile_source,
    online=True,
    description="Static team assignment of the agent (sales_teams).",
    owner="crm-feature-platform",
    tags={"entity": "sales_agent", "grain": "static"},
)
