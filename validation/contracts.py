"""pandera data contracts for the four tables: types, ranges, allowed values, unique ids.

Each column check carries a rule id (`<table>.<column>.<rule>`) and a category; `check_contract`
runs a schema lazily and turns pandera's failure cases into findings whose `rows` are the
offending positions. pandera's own checks map to MISSING (`not_null`), DUPLICATE (`unique`) and
SCHEMA (`dtype`, `missing_column`).
Conditional rules (an open deal may lack an account, a Prospecting deal has no engage_date) are
not expressible per column and live in `validation.rules`; here those columns are nullable.

Every number and date has bounds (the constants below; docs/data_quality.md): a value that parses
but is absurd (`1e999` lands as infinity, a price of 10^12, a deal engaged in 1900) would
otherwise pass `>= 0` and reach the features, the model and the online store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ingestion.tables import ACCOUNTS, DEAL_STAGES, PRODUCTS, SALES_PIPELINE, SALES_TEAMS
from validation.findings import MAX_EXAMPLES, Category, Finding, Severity, jsonable

REGIONAL_OFFICES = ("Central", "East", "West")
PRODUCT_SERIES = ("GTX", "MG", "GTK")
YEAR_ESTABLISHED_RANGE = (1800, 2100)
# The largest plausible value of each number: far above anything in the Kaggle data or the
# generator (revenue <= 11,700 (millions), employees <= 35,000, prices <= 26,768), far below
# what breaks arithmetic. Revenue is in millions: 10^6 is a trillion, above any company's.
REVENUE_MAX = 1_000_000.0
EMPLOYEES_MAX = 10_000_000  # the largest employers have about 2 million
PRICE_MAX = 10_000_000  # sales_price and close_value: the dearest product lists at 26,768
# Deal dates: feature rows are stamped from 2000-01-01 (earlier rows would never be
# materialised) and a date a century ahead is a typo, not a plan.
DATE_RANGE = (pd.Timestamp("2000-01-01"), pd.Timestamp("2099-12-31"))


@dataclass(frozen=True)
class ColumnRule:
    """One named check on one column; `name` becomes the rule id's last part."""

    name: str
    category: Category
    check: pa.Check
    message: str


@dataclass(frozen=True)
class ColumnContract:
    dtype: object
    nullable: bool = False
    unique: bool = False
    rules: tuple[ColumnRule, ...] = ()


def _value_rule(name: str, check: pa.Check, message: str) -> ColumnRule:
    """A range or allowed-values check (every column check the contracts have so far)."""
    return ColumnRule(name, Category.VALUE, check, message)


def _finite(column: str) -> ColumnRule:
    """Not infinite (a CSV value like `1e999` parses as infinity; NaN is a missing value)."""
    return _value_rule(
        "finite", pa.Check(lambda s: ~np.isinf(s.astype(float))), f"{column} is not finite"
    )


def _at_most(column: str, high: float) -> ColumnRule:
    """Not above `high` (infinity is left to `_finite`, so it is reported once)."""
    return _value_rule(
        "plausible",
        pa.Check(lambda s: (s <= high) | np.isinf(s.astype(float))),
        f"{column} is above {high:,.0f}",
    )


def _dated(column: str) -> tuple[ColumnRule, ...]:
    low, high = DATE_RANGE
    return (
        _value_rule(
            "plausible",
            pa.Check.in_range(low, high),
            f"{column} outside {low:%Y-%m-%d}..{high:%Y-%m-%d}",
        ),
    )


def _allowed(column: str, values: tuple[str, ...]) -> tuple[ColumnRule, ...]:
    """The column's values must be one of `values` (a known alias is fixed before this)."""
    message = f"{column} is not one of {', '.join(values)}"
    return (_value_rule("allowed", pa.Check.isin(values), message),)


CONTRACTS: dict[str, dict[str, ColumnContract]] = {
    ACCOUNTS: {
        "account": ColumnContract(str, unique=True),
        "sector": ColumnContract(str),
        "year_established": ColumnContract(
            "Int64",
            rules=(
                _value_rule(
                    "plausible",
                    pa.Check.in_range(*YEAR_ESTABLISHED_RANGE),
                    f"year_established outside {YEAR_ESTABLISHED_RANGE}",
                ),
            ),
        ),
        "revenue": ColumnContract(
            float,
            rules=(
                _value_rule("non_negative", pa.Check.ge(0), "revenue is negative"),
                _finite("revenue"),
                _at_most("revenue (millions)", REVENUE_MAX),
            ),
        ),
        "employees": ColumnContract(
            "Int64",
            rules=(
                _value_rule("non_negative", pa.Check.ge(0), "employees is negative"),
                _at_most("employees", EMPLOYEES_MAX),
            ),
        ),
        "office_location": ColumnContract(str),
        "subsidiary_of": ColumnContract(str, nullable=True),
    },
    PRODUCTS: {
        "product": ColumnContract(str, unique=True),
        "series": ColumnContract(
            str,
            rules=_allowed("series", PRODUCT_SERIES),
        ),
        "sales_price": ColumnContract(
            "Int64",
            rules=(
                _value_rule("positive", pa.Check.gt(0), "sales_price is not > 0"),
                _at_most("sales_price", PRICE_MAX),
            ),
        ),
    },
    SALES_TEAMS: {
        "sales_agent": ColumnContract(str, unique=True),
        "manager": ColumnContract(str),
        "regional_office": ColumnContract(
            str,
            rules=_allowed("regional_office", REGIONAL_OFFICES),
        ),
    },
    SALES_PIPELINE: {
        "opportunity_id": ColumnContract(str, unique=True),
        "sales_agent": ColumnContract(str),
        "product": ColumnContract(str),
        "account": ColumnContract(str, nullable=True),
        "deal_stage": ColumnContract(
            str,
            rules=_allowed("deal_stage", DEAL_STAGES),
        ),
        "engage_date": ColumnContract("datetime64[s]", nullable=True, rules=_dated("engage_date")),
        "close_date": ColumnContract("datetime64[s]", nullable=True, rules=_dated("close_date")),
        "close_value": ColumnContract(
            "Int64",
            nullable=True,
            rules=(
                _value_rule("non_negative", pa.Check.ge(0), "close_value is negative"),
                _at_most("close_value", PRICE_MAX),
            ),
        ),
    },
}

# pandera's own checks -> our rule name, category and message
_BUILTIN = {
    "not_nullable": ("not_null", Category.MISSING, "required value is empty"),
    "field_uniqueness": (
        "unique",
        Category.DUPLICATE,
        "id is not unique (every occurrence is quarantined)",
    ),
}


def schema(table: str) -> pa.DataFrameSchema:
    """The pandera schema of `table` (columns beyond the contract are left alone)."""
    columns = {
        name: pa.Column(
            c.dtype,
            checks=[r.check for r in c.rules],
            nullable=c.nullable,
            unique=c.unique,
            name=name,
        )
        for name, c in CONTRACTS[table].items()
    }
    return pa.DataFrameSchema(columns, name=table, strict=False)


def check_contract(table: str, frame: pd.DataFrame) -> list[Finding]:
    """Validate `frame` lazily; one error finding per failed (column, check)."""
    try:
        schema(table).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _findings(table, frame, exc.failure_cases)
    return []


def _findings(table: str, frame: pd.DataFrame, cases: pd.DataFrame) -> list[Finding]:
    findings: list[Finding] = []
    checks = cases["check"].astype(str)
    # Table-level failures (a missing column) name the schema, not a column.
    columns = cases["column"].where(checks != "column_in_dataframe", None).fillna("")
    cases = cases.assign(column=columns, check=checks)
    for (column, check, number), group in cases.groupby(
        ["column", "check", pd.to_numeric(cases["check_number"], errors="coerce").fillna(-1)],
        sort=True,
        dropna=False,
    ):
        name, category, message = _describe(table, str(column), str(check), int(float(str(number))))
        positions = group["index"].dropna().astype(np.int64).unique()
        has_rows = len(positions) > 0
        examples: list = (
            [jsonable(v) for v in group["failure_case"].head(MAX_EXAMPLES)]
            if not has_rows or not column
            else _examples(frame, positions, str(column))
        )
        findings.append(
            Finding(
                rule_id=f"{table}.{column or 'table'}.{name}",
                table=table,
                severity=Severity.ERROR,
                count=len(positions) if has_rows else len(group),
                message=message,
                examples=examples,
                rows=positions if has_rows else None,
                category=category,
                column=str(column) or None,
            )
        )
    return findings


def _describe(table: str, column: str, check: str, number: int) -> tuple[str, Category, str]:
    """Rule name, category and message of one failed pandera check."""
    if check in _BUILTIN:
        name, category, message = _BUILTIN[check]
        return name, category, f"{table}.{column}: {message}"
    if check.startswith("dtype("):
        expected = CONTRACTS[table][column].dtype if column in CONTRACTS[table] else "?"
        return "dtype", Category.SCHEMA, f"{table}.{column}: values are not of type {expected}"
    if check == "column_in_dataframe":
        return "missing_column", Category.SCHEMA, f"{table} lacks a contract column"
    rules = CONTRACTS[table][column].rules if column in CONTRACTS[table] else ()
    if 0 <= number < len(rules):
        rule = rules[number]
        return rule.name, rule.category, f"{table}.{column}: {rule.message}"
    return check, Category.VALUE, f"{table}.{column}: failed {check}"


def _examples(frame: pd.DataFrame, positions: np.ndarray, column: str) -> list:
    key = frame.columns[0]
    sample = frame.iloc[positions[:MAX_EXAMPLES]]
    columns = [key] if column == key else [key, column]
    return [{k: jsonable(v) for k, v in row.items()} for row in sample[columns].to_dict("records")]
