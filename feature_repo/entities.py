"""The business entities features are keyed by (sector: for product-within-sector stats)."""

from feast import Entity, ValueType

opportunity = Entity(
    name="opportunity",
    join_keys=["opportunity_id"],
    value_type=ValueType.STRING,
    description="One B2B sales opportunity (a row of sales_pipeline).",
    owner="crm-feature-platform",
    tags={"domain": "crm"},
)

sales_agent = Entity(
    name="sales_agent",
    join_keys=["sales_agent"],
    value_type=ValueType.STRING,
    description="The sales agent who owns an opportunity.",
    owner="crm-feature-platform",
    tags={"domain": "crm"},
)

account = Entity(
    name="account",
    join_keys=["account"],
    value_type=ValueType.STRING,
    description="The customer account; null for some open deals (features then come back null).",
    owner="crm-feature-platform",
    tags={"domain": "crm"},
)

product = Entity(
    name="product",
    join_keys=["product"],
    value_type=ValueType.STRING,
    description="The product sold, with its list price.",
    owner="crm-feature-platform",
    tags={"domain": "crm"},
)

sector = Entity(
    name="sector",
    join_keys=["sector"],
    value_type=ValueType.STRING,
    description="The account's industry sector; null when the deal has no account yet.",
    owner="crm-feature-platform",
    tags={"domain": "crm"},
)
