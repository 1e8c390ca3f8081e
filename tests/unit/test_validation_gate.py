"""validate_snapshot on a real local lake: publish-or-not, quarantine, report, history, gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from infra.lake import Lake
from infra.layout import VALIDATION_HISTORY_KEY, quarantine_key, validated_manifest_key
from infra.settings import Settings
from ingestion.csv_files import read_csv_folder
from ingestion.landing import land
from ingestion.source_data import SourceData
from ingestion.tables import SCHEMAS, TABLES
from validation.errors import NotValidatedError, SnapshotNotLandedError, ValidationGateError
from validation.gate import ensure_valid
from validation.published import latest_validated_snapshot, read_validated
from validation.run import validate_snapshot

BASE = Path(__file__).resolve().parents[1] / "data" / "base"
THRESHOLD = Settings.model_fields["quality_threshold"].default  # the project's default, 0.9


@pytest.fixture
def lake(local_settings: Settings) -> Lake:
    return Lake.from_settings(local_settings)


@pytest.fixture(scope="module")
def base() -> SourceData:
    return read_csv_folder(BASE)


def broken(base: SourceData) -> SourceData:
    """The base data with 3 of 30 deals under an unknown stage: the gate must block it."""
    pipeline = base.tables["sales_pipeline"].to_pylist()
    for row in pipeline[:3]:
        row["deal_stage"] = "Pending"
    tables = dict(base.tables)
    tables["sales_pipeline"] = pa.Table.from_pylist(pipeline, schema=SCHEMAS["sales_pipeline"])
    return SourceData(tables=tables, source="test:broken", checksums={})


def test_a_passing_snapshot_is_published_atomically_with_its_report(lake, base) -> None:
    land(lake, base, "2017-06-30", code_version="test")
    result = ensure_valid(validate_snapshot(lake, "2017-06-30", threshold=THRESHOLD))
    assert result.passed and result.validated_manifest == validated_manifest_key("2017-06-30")
    manifest = lake.read_manifest(result.validated_manifest)
    assert manifest.metadata["aliases_version"] == result.aliases_version
    assert manifest.metadata["score"] == pytest.approx(result.score.value, abs=1e-6)
    tables = read_validated(lake, "2017-06-30")
    assert set(tables) == set(TABLES)
    assert tables["sales_pipeline"].num_rows == 30
    assert "GTXPro" not in tables["sales_pipeline"].column("product").to_pylist()
    assert latest_validated_snapshot(lake) == "2017-06-30"

    report = lake.read_json(result.report_key)
    assert report["passed"] is True and report["threshold"] == 0.9
    assert report["row_counts"]["sales_pipeline"] == {"in": 30, "validated": 30, "quarantined": 0}
    assert report["findings_by_severity"]["warning"] >= 7
    page = lake.get_bytes(result.html_key).decode()
    assert "PASSED" in page and "<style>" in page
    assert not re.search(r"(src|href)\s*=", page), "the page must not load external assets"
    for finding in report["findings"]:
        assert finding["rule_id"] in page


def test_a_failing_snapshot_writes_report_and_quarantine_but_publishes_nothing(lake, base) -> None:
    land(lake, broken(base), "2017-06-30", code_version="test")
    result = validate_snapshot(lake, "2017-06-30", threshold=THRESHOLD)
    assert not result.passed
    assert [f.rule_id for f in result.blocking] == [
        "gate.quarantine_rate",
        "gate.unknown_stage_rate",
    ]
    assert not lake.exists(validated_manifest_key("2017-06-30"))
    assert list(lake.list("validated")) == []
    quarantine = lake.read_parquet(quarantine_key("sales_pipeline", "2017-06-30"))
    assert quarantine.num_rows == 3
    assert set(quarantine.column("_reasons").to_pylist()) == {"sales_pipeline.deal_stage.allowed"}
    assert lake.read_json(result.report_key)["passed"] is False
    assert "FAILED" in lake.get_bytes(result.html_key).decode()
    with pytest.raises(ValidationGateError) as error:
        ensure_valid(result)
    message = str(error.value)
    assert message.startswith("Snapshot 2017-06-30 failed validation:")
    assert "2 blocking rule(s) failed: gate.quarantine_rate" in message
    assert "reports/validation/snapshot=2017-06-30/report.html" in message
    with pytest.raises(NotValidatedError, match="crm validate --snapshot 2017-06-30"):
        read_validated(lake, "2017-06-30")
    with pytest.raises(NotValidatedError, match="crm validate"):
        latest_validated_snapshot(lake)


def test_a_score_below_the_threshold_fails_the_gate_alone(lake, base) -> None:
    land(lake, base, "2017-06-30", code_version="test")
    result = validate_snapshot(lake, "2017-06-30", threshold=0.99)
    assert not result.blocking and not result.passed
    with pytest.raises(ValidationGateError, match=r"score 0\.9\d < threshold 0\.99"):
        ensure_valid(result)


def test_a_snapshot_that_no_longer_passes_is_withdrawn(lake, base) -> None:
    land(lake, base, "2017-06-30", code_version="test")
    assert validate_snapshot(lake, "2017-06-30", threshold=THRESHOLD).passed
    land(lake, broken(base), "2017-06-30", code_version="test")
    assert not validate_snapshot(lake, "2017-06-30", threshold=THRESHOLD).passed
    assert list(lake.list("validated")) == []


def test_history_keeps_one_entry_per_snapshot(lake, base) -> None:
    land(lake, base, "2017-06-30", code_version="test")
    land(lake, broken(base), "2017-12-31", code_version="test")
    validate_snapshot(lake, "2017-06-30", threshold=THRESHOLD)
    validate_snapshot(lake, "2017-12-31", threshold=THRESHOLD)
    validate_snapshot(lake, "2017-06-30", threshold=0.99)
    history = lake.read_json(VALIDATION_HISTORY_KEY)
    assert [(h["snapshot"], h["passed"]) for h in history] == [
        ("2017-06-30", False),
        ("2017-12-31", False),
    ]
    assert all(0.0 <= h["score"] <= 1.0 and h["validated_at"] for h in history)
    json.dumps(history)


def test_an_unlanded_snapshot_is_a_clear_error(lake) -> None:
    with pytest.raises(SnapshotNotLandedError, match="crm land"):
        validate_snapshot(lake, "2017-01-31", threshold=THRESHOLD)


def test_the_flow_takes_the_threshold_from_the_settings_unless_given(
    lake, base, local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.validate import run_validation

    land(lake, base, "2017-06-30", code_version="test")
    monkeypatch.setenv("CRM_PROFILE", "local")
    monkeypatch.setenv("CRM_HOME", str(local_settings.home))
    monkeypatch.setenv("CRM_QUALITY_THRESHOLD", "0.99")
    from_settings = run_validation.fn("2017-06-30", None)
    assert from_settings.threshold == 0.99 and not from_settings.passed
    given = run_validation.fn("2017-06-30", THRESHOLD)
    assert given.threshold == THRESHOLD and given.passed
