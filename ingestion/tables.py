"""The four CRM tables: names, columns and the Arrow types they are landed with.

This is the physical schema of the landed Parquet (`raw/<table>/snapshot=<date>/`). The rules a
table must satisfy beyond its types (ranges, allowed values, references) are in `validation/`.
"""

from __future__ import annotations

import pyarrow as pa

ACCOUNTS = "accounts"
PRODUCTS = "products"
SALES_TEAMS = "sales_teams"
SALES_PIPELINE = "sales_pipeline"

SCHEMAS: dict[str, pa.Schema] = {
    ACCOUNTS: pa.schema(
        [
            ("account", pa.string()),
            ("sector", pa.string()),
            ("year_established", pa.int64()),
            ("revenue", pa.float64()),
            ("employees", pa.int64()),
            ("office_location", pa.string()),
            ("subsidiary_of", pa.string()),
        ]
    ),
    PRODUCTS: pa.schema(
        [
            ("product", pa.string()),
            ("series", pa.string()),
            ("sales_price", pa.int64()),
        ]
    ),
    SALES_TEAMS: pa.schema(
        [
            ("sales_agent", pa.string()),
            ("manager", pa.string()),
            ("regional_office", pa.string()),
        ]
    ),
    SALES_PIPELINE: pa.schema(
        [
            ("opportunity_id", pa.string()),
            ("sales_agent", pa.string()),
            ("product", pa.string()),
            ("account", pa.string()),
            ("deal_stage", pa.string()),
            ("engage_date", pa.date32()),
            ("close_date", pa.date32()),
            ("close_value", pa.int64()),
        ]
    ),
}

TABLES: tuple[str, ...] = (ACCOUNTS, PRODUCTS, SALES_TEAMS, SALES_PIPELINE)
CSV_FILES: dict[str, str] = {name: f"{name}.csv" for name in TABLES}
OPTIONAL_FILES: tuple[str, ...] = ("data_dictionary.csv",)

STAGES_CLOSED: tuple[str, ...] = ("Won", "Lost")
STAGES_OPEN: tuple[str, ...] = ("Engaging", "Prospecting")
DEAL_STAGES: tuple[str, ...] = STAGES_CLOSED + STAGES_OPEN


def raw_key(table: str, snapshot: str) -> str:
    """Logical key of a landed table (the manifest maps it to the physical object)."""
    return f"raw/{table}/snapshot={snapshot}/{table}.parquet"


def raw_manifest_key(snapshot: str) -> str:
    """The commit point of a landed snapshot: one manifest for all four tables."""
    return f"raw/_manifests/snapshot={snapshot}/_manifest.json"


def validated_key(table: str, snapshot: str) -> str:
    return f"validated/{table}/snapshot={snapshot}/{table}.parquet"


def validated_manifest_key(snapshot: str) -> str:
    return f"validated/_manifests/snapshot={snapshot}/_manifest.json"


def quarantine_key(table: str, snapshot: str) -> str:
    return f"quarantine/{table}/snapshot={snapshot}/{table}.parquet"


def report_prefix(snapshot: str) -> str:
    return f"reports/validation/snapshot={snapshot}"
