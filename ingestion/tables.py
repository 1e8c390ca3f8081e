"""The four CRM tables: names, columns and the Arrow types they are landed with.

This is the physical schema of the landed Parquet (where it lands: `infra/layout.py`). The rules a
table must satisfy beyond its types (ranges, allowed values, references) are in `validation/`.
"""

from __future__ import annotations

import json

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

# Schema metadata of a table read from a file that had columns beyond its schema: a JSON list of
# their names. They are not landed; validation reports them as a warning.
IGNORED_COLUMNS = b"crm.ignored_columns"
CSV_FILES: dict[str, str] = {name: f"{name}.csv" for name in TABLES}

STAGES_CLOSED: tuple[str, ...] = ("Won", "Lost")
STAGES_OPEN: tuple[str, ...] = ("Engaging", "Prospecting")
DEAL_STAGES: tuple[str, ...] = STAGES_CLOSED + STAGES_OPEN


def ignored_columns(table: pa.Table) -> list[str]:
    """Columns of the source file beyond the table's schema (not landed), if it recorded any."""
    raw = (table.schema.metadata or {}).get(IGNORED_COLUMNS)
    return [str(name) for name in json.loads(raw)] if raw else []
