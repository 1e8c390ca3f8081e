"""Account features: daily win/pipeline stats and the static firmographic profile."""

from feast import Field
from feast.types import Bool, Float64, Int64, String

from feature_repo.data_sources import account_daily_stats_source, account_profile_source
from feature_repo.entities import account
from feature_repo.features.stats import daily_stats_view, profile_view

account_daily_stats_fv = daily_stats_view(
    [account], account_daily_stats_source, "Account buying history"
)

account_profile_fv = profile_view(
    account,
    account_profile_source,
    [
        Field(name="sector", dtype=String, description="Industry sector."),
        Field(name="revenue", dtype=Float64, description="Annual revenue, millions USD."),
        Field(name="employees", dtype=Int64, description="Head count."),
        Field(name="year_established", dtype=Int64, description="Founding year."),
        Field(name="office_location", dtype=String, description="Headquarters country."),
        Field(name="has_parent", dtype=Bool, description="Subsidiary of another account."),
    ],
    "Static firmographics of the account (accounts).",
)
