"""Sales agent features: daily win/pipeline stats and the static team profile."""

from feast import Field
from feast.types import String

from feature_repo.data_sources import sales_agent_daily_stats_source, sales_agent_profile_source
from feature_repo.entities import sales_agent
from feature_repo.features.stats import daily_stats_view, profile_view

sales_agent_daily_stats_fv = daily_stats_view(
    [sales_agent], sales_agent_daily_stats_source, "Agent track record"
)

sales_agent_profile_fv = profile_view(
    sales_agent,
    sales_agent_profile_source,
    [
        Field(name="manager", dtype=String, description="The agent's manager."),
        Field(name="regional_office", dtype=String, description="Central, East or West."),
    ],
    "Static team assignment of the agent (sales_teams).",
)
