"""Account features: daily win/pipeline stats and the static firmographic profile."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64, String

from feature_repo.data_sources import account_daily_stats_source, account_profile_source
from feature_repo.entities import account
from feature_repo.features.stats import DAILY_STATS_SCHEMA

account_daily_stats_fv = FeatureView(
    name="account_daily_stats",
    entities=[account],
    ttl=timedelta(days=1),
    schema=DAILY_STATS_SCHEMA,
    source=account_daily_stats_source,
    online=True,
    description="Account buying history as of the end of each day: closes, wins, smoothed "
    "win rates over 30/90/365 days and all time, open pipeline. Dense daily rows.",
    owner="crm-feature-platform",
    tags={"entity": "account", "grain": "daily", "pit": "end-of-day"},
)

account_profile_fv = FeatureView(
    name="account_profile",
    entities=[account],
    ttl=timedelta(0),  # static: valid forever
    schema=[
        Field(name="sector", dtype=String, description="Industry sector."),
        Field(name="revenue", dtype=Float64, description="Annual revenue, millions USD."),
        Field(name="employees", dtype=Int64, description="Head count."),
        Field(name="year_established", dtype=Int64, description="Founding year."),
        Field(name="office_location", dtype=String, description="Headquarters country."),
        Field(name="has_parent", dtype=Bool, description="Subsidiary of another account."),
    ],
    source=account_profile_source,
    online=True,
    description="Static firmographics of the account (accounts).",
    owner="crm-feature-platform",
    tags={"entity": "account", "grain": "static"},
)
