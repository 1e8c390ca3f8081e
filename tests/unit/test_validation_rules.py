"""Contracts, rules, aliases and the score on small in-memory tables (no lake)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from infra.settings import Settings
from ingestion.csv_files import read_csv_folder
from ingestion.tables import SCHEMAS, TABLES
from validation.aliases import ALIASES, ALIASES_VERSION
from validation.contracts import check_contract
from validation.findings import Category, Finding, Severity
from validation.gate import gate_findings
from validation.rules import STAGE_RULES, stage_rules
from validation.run import REASONS_COLUMN, Outcome, apply_aliases, to_frame, validate_tables
from validation.score import WEIGHTS, quality_score

BASE = Path(__file__).resolve().parents[1] / "data" / "base"
D = dt.date
THRESHOLD = Settings.model_fields["quality_threshold"].default  # the project's default


def validate(tables: dict[str, pa.Table]) -> Outcome:
    return validate_tables(tables, threshold=THRESHOLD)


@pytest.fixture(scope="module")
def base() -> dict[str, pa.Table]:
    return read_csv_folder(BASE).tables


def deals(rows: list[tuple]) -> pa.Table:
    names = SCHEMAS["sales_pipeline"].names
    return pa.Table.from_pylist(
        [dict(zip(names, r, strict=True)) for r in rows], schema=SCHEMAS["sales_pipeline"]
    )


def with_pipeline(base: dict[str, pa.Table], extra: list[tuple]) -> dict[str, pa.Table]:
    return {**base, "sales_pipeline": pa.concat_tables([base["sales_pipeline"], deals(extra)])}


def by_rule(outcome) -> dict[str, object]:
    return {f.rule_id: f for f in outcome.findings}


def test_contract_reports_ranges_allowed_values_and_unique_ids() -> None:
    products = pa.table(
        {"product": ["A", "A", "B"], "series": ["GTX", "XYZ", "MG"], "sales_price": [10, 0, -5]},
        schema=SCHEMAS["products"],
    )
    findings = {f.rule_id: f for f in check_contract("products", to_frame(products))}
    assert findings["products.product.unique"].count == 2
    assert findings["products.series.allowed"].count == 1
    assert findings["products.sales_price.positive"].count == 2
    assert list(findings["products.sales_price.positive"].rows) == [1, 2]
    assert all(f.severity is Severity.ERROR for f in findings.values())
    example = findings["products.series.allowed"].examples[0]
    assert example == {"product": "A", "series": "XYZ"}


def test_contract_reports_a_missing_column_and_a_wrong_type() -> None:
    frame = to_frame(pa.table({"sales_agent": ["x"], "manager": [3]}))
    rules = {f.rule_id for f in check_contract("sales_teams", frame)}
    assert "sales_teams.table.missing_column" in rules
    assert "sales_teams.manager.dtype" in rules


def test_aliases_are_one_versioned_mapping_applied_and_counted(base) -> None:
    assert ALIASES_VERSION and ("sales_pipeline", "product") in ALIASES
    fixed, findings = apply_aliases("sales_pipeline", base["sales_pipeline"])
    assert "GTXPro" not in fixed.column("product").to_pylist()
    assert [(f.rule_id, f.severity, f.count) for f in findings] == [
        ("alias.sales_pipeline.product", Severity.WARNING, 6)
    ]
    assert fixed.schema.equals(SCHEMAS["sales_pipeline"])


def test_base_quirks_are_warnings_and_info_and_the_output_is_aliased(base) -> None:
    outcome = validate(base)
    rules = by_rule(outcome)
    assert outcome.passed and outcome.score.value > 0.9
    for rule in (
        "alias.sales_pipeline.product",
        "alias.accounts.sector",
        "alias.accounts.office_location",
        "sales_pipeline.open_without_account",
        "sales_pipeline.duplicate_rows",
        "sales_teams.agent_without_deals",
        "accounts.established_after_first_deal",
    ):
        assert rules[rule].severity is Severity.WARNING, rule
    for rule in (
        "sales_pipeline.close_value_label_leak",
        "sales_pipeline.late_first_close",
        "sales_pipeline.close_value_integer",
        "accounts.subsidiary_of_mostly_empty",
    ):
        assert rules[rule].severity is Severity.INFO, rule
    assert rules["sales_pipeline.duplicate_rows"].count == 2
    assert rules["sales_pipeline.open_without_account"].count == 7
    assert rules["sales_pipeline.late_first_close"].count == (D(2017, 3, 1) - D(2016, 10, 20)).days
    assert not [f for f in outcome.findings if f.severity is Severity.ERROR]
    validated = outcome.validated
    assert "GTX Pro" in validated["sales_pipeline"].column("product").to_pylist()
    assert "technolgy" not in validated["accounts"].column("sector").to_pylist()
    assert "Philippines" in validated["accounts"].column("office_location").to_pylist()
    for name, table in validated.items():
        assert table.schema.equals(SCHEMAS[name])


def test_stage_invariants_quarantine_rows_with_their_reasons(base) -> None:
    agent, product = "Moses Frase", "GTX Basic"
    bad = [
        ("BAD00001", agent, product, None, "Won", D(2017, 4, 1), D(2017, 5, 1), 500),
        ("BAD00002", agent, product, "Cancity", "Lost", D(2017, 4, 1), D(2017, 3, 1), 10),
        ("BAD00003", agent, product, "Cancity", "Prospecting", None, D(2017, 5, 1), None),
        ("BAD00004", agent, product, "Cancity", "Engaging", None, None, None),
        ("BAD00005", agent, product, "Cancity", "Won", D(2017, 4, 1), None, None),
    ]
    outcome = validate(with_pipeline(base, bad))
    rules = by_rule(outcome)
    for rule in (
        "sales_pipeline.closed_without_account",
        "sales_pipeline.close_before_engage",
        "sales_pipeline.lost_with_value",
        "sales_pipeline.open_with_close_date",
        "sales_pipeline.missing_engage_date",
        "sales_pipeline.closed_without_close_date",
        "sales_pipeline.closed_without_close_value",
    ):
        assert rules[rule].severity is Severity.ERROR and rules[rule].count == 1, rule
    quarantine = outcome.quarantined["sales_pipeline"]
    assert quarantine.column("opportunity_id").to_pylist() == [r[0] for r in bad]
    reasons = dict(
        zip(
            quarantine.column("opportunity_id").to_pylist(),
            quarantine.column(REASONS_COLUMN).to_pylist(),
            strict=True,
        )
    )
    assert set(reasons["BAD00002"].split("; ")) == {
        "sales_pipeline.close_before_engage",
        "sales_pipeline.lost_with_value",
    }
    assert outcome.row_counts["sales_pipeline"] == {"in": 35, "validated": 30, "quarantined": 5}
    # 5 of 35 deals quarantined (14 %) is more than the 5 % the gate allows.
    assert not outcome.passed
    assert "gate.quarantine_rate" in rules and rules["gate.quarantine_rate"].blocking


def test_unresolved_references_are_errors_and_aliases_are_not(base) -> None:
    extra = [
        ("REF00001", "Nobody", "GTXPro", "Cancity", "Engaging", D(2017, 10, 1), None, None),
        (
            "REF00002",
            "Moses Frase",
            "GTX Ultra",
            "Nowhere Inc",
            "Engaging",
            D(2017, 10, 1),
            None,
            None,
        ),
    ]
    outcome = validate(with_pipeline(base, extra))
    rules = by_rule(outcome)
    assert rules["sales_pipeline.unknown_sales_agent"].examples[0]["sales_agent"] == "Nobody"
    assert rules["sales_pipeline.unknown_product"].count == 1
    assert rules["sales_pipeline.unknown_account"].count == 1
    assert rules["gate.unresolved_reference_rate"].blocking
    assert rules["alias.sales_pipeline.product"].count == 7


def test_a_quarantined_dimension_row_does_not_resolve(base) -> None:
    products = base["products"].to_pylist()
    products[0]["sales_price"] = -1  # GTX Basic
    outcome = validate(
        {**base, "products": pa.Table.from_pylist(products, schema=SCHEMAS["products"])}
    )
    rules = by_rule(outcome)
    gtx_basic = base["sales_pipeline"].column("product").to_pylist().count("GTX Basic")
    assert rules["sales_pipeline.unknown_product"].count == gtx_basic
    assert outcome.row_counts["products"]["quarantined"] == 1


def test_missing_or_empty_tables_block(base) -> None:
    outcome = validate({k: v for k, v in base.items() if k != "products"})
    rules = by_rule(outcome)
    assert rules["gate.missing_table"].blocking and rules["gate.missing_table"].table == "products"
    assert not outcome.passed
    empty = validate({**base, "sales_pipeline": SCHEMAS["sales_pipeline"].empty_table()})
    assert "gate.empty_table" in by_rule(empty) and not empty.passed


def test_score_formula_matches_its_documented_weights(base) -> None:
    # The base's two duplicates are open deals without account: reported, not scored.
    assert validate(base).score.duplicates == 0.0
    # 1C1I7A6R under another id
    twin = ("TWIN0001", "Moses Frase", "GTX Plus Basic", "Cancity", "Won", D(2016, 10, 20))
    twin += (D(2017, 3, 1), 1054)
    tables = with_pipeline(base, [twin])
    outcome = validate(tables)
    duplicates = by_rule(outcome)["sales_pipeline.duplicate_rows"]
    assert (duplicates.count, duplicates.details) == (3, {"with_account": 1})
    s = outcome.score
    rows = sum(t.num_rows for t in tables.values())
    assert s.duplicates == pytest.approx(1 / rows)
    warnings = sum(f.count for f in outcome.findings if f.severity is Severity.WARNING)
    assert s.warnings == pytest.approx(warnings / rows)
    expected = 1 - sum(WEIGHTS[k] * getattr(s, k) for k in WEIGHTS)
    assert s.value == pytest.approx(expected)
    unresolved = Finding(
        "sales_pipeline.unknown_product",
        "sales_pipeline",
        Severity.ERROR,
        10,
        "unknown",
        rows=np.arange(10),
        category=Category.REFERENCE,
    )
    clipped = quality_score([unresolved], rows={"sales_pipeline": 10}, cells={"sales_pipeline": 80})
    assert (clipped.violations, clipped.references, clipped.value) == (1.0, 1.0, 0.0)


def test_score_and_gate_select_findings_by_category_not_by_rule_id() -> None:
    def finding(rule_id: str, table: str, category: Category, count: int, **kw) -> Finding:
        return Finding(rule_id, table, Severity.WARNING, count, "m", category=category, **kw)

    findings = [
        finding("any.name", "sales_pipeline", Category.MISSING, 8),
        finding("other.name", "sales_pipeline", Category.DUPLICATE, 2),
        finding("deal.ref", "sales_pipeline", Category.REFERENCE, 3),
        finding("parent.ref", "accounts", Category.REFERENCE, 5),  # not a deal: not scored
        finding("sales_pipeline.x.not_null", "sales_pipeline", Category.QUIRK, 50),  # id ignored
        finding("stage", "sales_pipeline", Category.VALUE, 4, column="deal_stage"),
        finding("series", "sales_pipeline", Category.VALUE, 40, column="product"),
    ]
    s = quality_score(findings, rows={"sales_pipeline": 100}, cells={"sales_pipeline": 800})
    assert s.missing == pytest.approx(8 / 800)
    assert s.duplicates == pytest.approx(2 / 100)
    assert s.references == pytest.approx(3 / 100)
    assert s.warnings == pytest.approx(1.0)  # 112 warnings in 100 rows, capped
    counts = {t: {"in": 100, "quarantined": 0} for t in TABLES}
    validated = {"sales_pipeline": pa.table({"deal_stage": ["Won", "Lost"]})}
    blocking = gate_findings(findings, counts, validated)
    assert {f.rule_id: f.count for f in blocking} == {
        "gate.unknown_stage_rate": 4,
        "gate.unresolved_reference_rate": 3,
    }
    assert all(f.blocking and f.category is Category.GATE for f in blocking)


def test_every_stage_rule_is_one_row_of_the_table(base) -> None:
    ids = [rule.rule_id for rule in STAGE_RULES]
    assert len(ids) == len(set(ids)) == 11
    findings = stage_rules(to_frame(base["sales_pipeline"]))
    assert {f.rule_id for f in findings} <= set(ids)
    for f in findings:
        rule = next(r for r in STAGE_RULES if r.rule_id == f.rule_id)
        assert (f.category, f.severity, f.message) == (rule.category, rule.severity, rule.message)
