"""Issue 12, defect 6: non-finite and absurd values are refused by the contracts.

`revenue=1e999` landed as infinity, passed `revenue >= 0`, reached the feature tables and the
online store, and crashed training. Every number and date now has bounds; an offending row is
quarantined with the rule, the column and its key named, and never reaches validated/.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from feature_tables.compute import compute_feature_tables
from infra.lake import Lake
from infra.settings import Settings
from ingestion.csv_files import read_csv_folder
from ingestion.landing import land
from ingestion.source_data import SourceData
from validation.contracts import DATE_RANGE, EMPLOYEES_MAX, PRICE_MAX, REVENUE_MAX
from validation.errors import ValidationGateError
from validation.gate import ensure_valid
from validation.published import read_validated
from validation.run import REASONS_COLUMN, validate_snapshot, validate_tables

BASE = Path(__file__).resolve().parents[1] / "data" / "base"
THRESHOLD = Settings.model_fields["quality_threshold"].default
SNAPSHOT = "2017-12-31"


@pytest.fixture(scope="module")
def base() -> dict[str, pa.Table]:
    return read_csv_folder(BASE).tables


def with_value(
    tables: dict[str, pa.Table], table: str, column: str, row: int, value: object
) -> dict[str, pa.Table]:
    values = tables[table].column(column).to_pylist()
    values[row] = value
    field = tables[table].schema.field(column)
    position = tables[table].column_names.index(column)
    changed = tables[table].set_column(position, field, pa.array(values, type=field.type))
    return {**tables, table: changed}


# table, column, a value just inside, the rule, a value just outside
BOUNDARIES = [
    ("accounts", "revenue", REVENUE_MAX, "plausible", REVENUE_MAX * 1.001),
    ("accounts", "revenue", 0.0, "non_negative", -0.01),
    ("accounts", "revenue", 1.0, "finite", math.inf),
    ("accounts", "revenue", 1.0, "finite", -math.inf),
    ("accounts", "employees", EMPLOYEES_MAX, "plausible", EMPLOYEES_MAX + 1),
    ("accounts", "year_established", 2100, "plausible", 2101),
    ("accounts", "year_established", 1800, "plausible", 1799),
    ("products", "sales_price", PRICE_MAX, "plausible", PRICE_MAX + 1),
    ("products", "sales_price", 1, "positive", 0),
    ("sales_pipeline", "close_value", PRICE_MAX, "plausible", PRICE_MAX + 1),
    ("sales_pipeline", "close_value", 0, "non_negative", -1),
    ("sales_pipeline", "engage_date", dt.date(2000, 1, 1), "plausible", dt.date(1999, 12, 31)),
    ("sales_pipeline", "close_date", dt.date(2099, 12, 31), "plausible", dt.date(2100, 1, 1)),
    ("sales_pipeline", "close_date", dt.date(2017, 3, 1), "plausible", dt.date(9999, 12, 31)),
    ("sales_pipeline", "engage_date", dt.date(2016, 10, 20), "plausible", dt.date(1, 1, 1)),
]


@pytest.mark.parametrize(("table", "column", "inside", "rule", "outside"), BOUNDARIES)
def test_each_bound_refuses_the_value_just_outside_it(
    base: dict[str, pa.Table], table: str, column: str, inside: object, rule: str, outside: object
) -> None:
    # row 0 of each table is a Won deal / a referenced account / a product in use
    ok = validate_tables(with_value(base, table, column, 0, inside), threshold=THRESHOLD)
    assert f"{table}.{column}.{rule}" not in {f.rule_id for f in ok.findings}
    bad = validate_tables(with_value(base, table, column, 0, outside), threshold=THRESHOLD)
    hits = [f for f in bad.findings if f.rule_id == f"{table}.{column}.{rule}"]
    assert len(hits) == 1, [f.rule_id for f in bad.findings]
    finding = hits[0]
    assert finding.column == column and finding.count == 1 and list(finding.rows) == [0]
    # the row is named by its key, the column by its name, the value shown as JSON can carry it
    key = base[table].column_names[0]
    assert finding.examples[0][key] == base[table].column(key)[0].as_py()
    assert column in finding.examples[0]
    json.dumps(finding.to_dict(), allow_nan=False)
    assert bad.quarantined[table].num_rows >= 1
    assert rule in bad.quarantined[table].column(REASONS_COLUMN)[0].as_py()
    assert (
        bad.validated[table].num_rows == base[table].num_rows - bad.row_counts[table]["quarantined"]
    )


def test_bounds_are_stated_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "data_quality.md").read_text()
    for text in ("1,000,000", "10,000,000", "2000-01-01", "2099-12-31", "finite"):
        assert text in docs, text
    assert DATE_RANGE[0].year == 2000


def test_infinite_revenue_never_reaches_validated_data_or_features(
    tmp_path: Path, base: dict[str, pa.Table]
) -> None:
    """The whole chain of the defect: land, validate, features from what was published."""
    lake = Lake.from_settings(Settings(profile="local", home=tmp_path / "crm", _env_file=None))
    bad = with_value(base, "accounts", "revenue", 0, math.inf)
    land(lake, SourceData(bad, "test", {}), SNAPSHOT, code_version="test")
    result = validate_snapshot(lake, SNAPSHOT, threshold=THRESHOLD)
    finite = [f for f in result.findings if f.rule_id == "accounts.revenue.finite"]
    assert finite and finite[0].examples == [{"account": "Acme Corporation", "revenue": "inf"}]
    body = json.loads(lake.get_bytes(result.report_key))  # strict JSON: no bare Infinity
    json.dumps(body, allow_nan=False)
    # one account of eight is too many to quarantine: the gate fails and nothing is published
    assert not result.passed
    with pytest.raises(ValidationGateError, match="accounts"):
        ensure_valid(result)
    quarantine = lake.read_parquet(f"quarantine/accounts/snapshot={SNAPSHOT}/accounts.parquet")
    assert quarantine.column("revenue").to_pylist() == [math.inf]


def test_with_a_lenient_gate_the_bad_row_is_quarantined_and_features_stay_finite(
    tmp_path: Path, base: dict[str, pa.Table]
) -> None:
    lake = Lake.from_settings(Settings(profile="local", home=tmp_path / "crm", _env_file=None))
    from validation.gate import GateLimits

    bad = with_value(base, "accounts", "revenue", 3, 1e999)
    land(lake, SourceData(bad, "test", {}), SNAPSHOT, code_version="test")
    lenient = GateLimits(max_quarantine_rate=0.5, max_unresolved_rate=0.5)
    result = validate_snapshot(lake, SNAPSHOT, threshold=0.0, limits=lenient)
    assert result.passed
    validated = read_validated(lake, SNAPSHOT)
    revenue = validated["accounts"].column("revenue")
    assert pc.all(pc.is_finite(revenue)).as_py()
    features = compute_feature_tables(validated)
    profile = features["account_profile"]
    assert profile["revenue"].map(math.isfinite).all()
    assert "Bioholding" not in set(profile["account"])
