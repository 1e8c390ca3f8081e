"""The business entities features are keyed by, and their join keys (the one home of those names).

`sector` is an entity for the product-within-sector stats: the account's sector, null when a deal
has no account yet.
"""

from feast import Entity, ValueType

OPPORTUNITY_ID = "opportunity_id"
SALES_AGENT = "sales_agent"
ACCOUNT = "account"
PRODUCT = "product"
SECTOR = "sector"


def _entity(name: str, join_key: str, description: str) -> Entity:
    return Entity(
        name=name,
        join_keys=[join_key],
        value_type=ValueType.STRING,
        description=description,
        owner="crm-feature-platform",
        tags={"domain": "crm"},
    )


opportunity = _entity(
    "opportunity", OPPORTUNITY_ID, "One B2B sales opportunity (a row of sales_pipeline)."
)
sales_agent = _entity(SALES_AGENT, SALES_AGENT, "The sales agent who owns an opportunity.")
account = _entity(
    ACCOUNT,
    ACCOUNT,
    "The customer account; null for some open deals (features then come back null).",
)
product = _entity(PRODUCT, PRODUCT, "The product sold, with its list price.")
sector = _entity(
    SECTOR, SECTOR, "The account's industry sector; null when the deal has no account yet."
)

ENTITIES: tuple[Entity, ...] = (opportunity, sales_agent, account, product, sector)
# A deal's keys for the views of the scoring service, and every join key of the repo.
DEAL_KEYS: tuple[str, ...] = (SALES_AGENT, ACCOUNT, PRODUCT, SECTOR)
JOIN_KEYS: tuple[str, ...] = (OPPORTUNITY_ID, *DEAL_KEYS)
