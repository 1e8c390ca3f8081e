"""What each use case asks Feast for, by name (never a hand-kept field list)."""

from feast import FeatureService, FeatureView

from feature_repo.features.account import account_daily_stats_fv, account_profile_fv
from feature_repo.features.product import product_daily_stats_fv, product_profile_fv
from feature_repo.features.product_sector import product_sector_daily_stats_fv
from feature_repo.features.sales_agent import sales_agent_daily_stats_fv, sales_agent_profile_fv
from feature_repo.on_demand import opportunity_request_features

# The service training and serving ask for, by name.
SCORING_SERVICE = "opportunity_scoring_v1"
# Feast's full feature names (`full_feature_names=True`): `<view>__<feature>`.
FULL_NAME_SEP = "__"


def full_name(view: str, feature: str) -> str:
    return f"{view}{FULL_NAME_SEP}{feature}"


# Everything known about an open deal's agent, account, product and product-within-sector at
# scoring time, plus the request-time features. Entity rows need `sector` (the account's, from
# the opportunity view) besides the agent, account and product. Not the opportunity view: its
# stage would leak the outcome.
SCORING_VIEWS: tuple[FeatureView, ...] = (
    sales_agent_daily_stats_fv,
    account_daily_stats_fv,
    product_daily_stats_fv,
    product_sector_daily_stats_fv,
    sales_agent_profile_fv,
    account_profile_fv,
    product_profile_fv,
)
opportunity_scoring_v1 = FeatureService(
    name=SCORING_SERVICE,
    features=[*SCORING_VIEWS, opportunity_request_features],
    description="Features a win-probability model uses to score an open opportunity.",
    owner="crm-feature-platform",
    tags={"use_case": "opportunity_scoring", "version": "1"},
)
