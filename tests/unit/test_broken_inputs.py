"""The broken-input corpus: every case either fails to parse (and lands nothing) with a one-line
error naming the file, or lands and is caught by validation with the expected rule (gate failures
publish nothing under validated/), or is another spelling of the base data (a `+` sign, CR or
CRLF line endings) and lands as exactly the same tables.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from infra.lake import Lake
from infra.layout import raw_manifest_key, validated_manifest_key
from infra.settings import Settings
from ingestion.csv_files import read_csv_folder
from ingestion.errors import SourceError
from ingestion.landing import land, list_snapshots
from validation.errors import ValidationGateError
from validation.gate import ensure_valid
from validation.run import validate_snapshot

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = DATA / "base"
CASES = sorted(p.name for p in (DATA / "broken").iterdir() if p.is_dir())
SNAPSHOT = "2017-12-31"
THRESHOLD = Settings.model_fields["quality_threshold"].default  # the project's default


def overlay(case: str, target: Path) -> Path:
    """The base dataset with the case's files on top (only the files that differ)."""
    shutil.copytree(BASE, target)
    for file in (DATA / "broken" / case).iterdir():
        if file.name != "expect.json":
            shutil.copyfile(file, target / file.name)
    return target


def expectation(case: str) -> dict:
    return json.loads((DATA / "broken" / case / "expect.json").read_text())


OUTCOMES = ("error", "finding", "lands")


def test_corpus_is_large_and_every_case_declares_an_outcome() -> None:
    assert len(CASES) >= 45
    for case in CASES:
        expected = expectation(case)
        assert sum(outcome in expected for outcome in OUTCOMES) == 1, case
        files = [p.name for p in (DATA / "broken" / case).iterdir() if p.name != "expect.json"]
        assert files and all((BASE / f).is_file() for f in files), case


def test_base_dataset_is_valid(tmp_path: Path, local_settings: Settings) -> None:
    lake = Lake.from_settings(local_settings)
    land(lake, read_csv_folder(BASE), SNAPSHOT, code_version="test")
    result = ensure_valid(validate_snapshot(lake, SNAPSHOT, threshold=THRESHOLD))
    assert result.validated_manifest == validated_manifest_key(SNAPSHOT)
    assert sum(c["quarantined"] for c in result.row_counts.values()) == 0


@pytest.mark.parametrize("case", CASES)
def test_broken_input(case: str, tmp_path: Path, local_settings: Settings) -> None:
    expected = expectation(case)
    folder = overlay(case, tmp_path / "src")
    lake = Lake.from_settings(local_settings)

    if "error" in expected:
        assert expected["error"] == "SourceError"
        with pytest.raises(SourceError, match=expected["match"]) as caught:
            land(lake, read_csv_folder(folder), SNAPSHOT, code_version="test")
        message = str(caught.value)
        assert "\n" not in message and ".csv" in message, message  # one line, names the file
        # Nothing half-landed: no manifest, no snapshot, no stray object.
        assert not lake.exists(raw_manifest_key(SNAPSHOT))
        assert list_snapshots(lake) == []
        assert list(lake.list("raw")) == []
        return

    if "lands" in expected:
        assert expected["lands"] == "as_base"
        tables, base = read_csv_folder(folder).tables, read_csv_folder(BASE).tables
        for name in tables:
            assert tables[name].equals(base[name]), name
        land(lake, read_csv_folder(folder), SNAPSHOT, code_version="test")
        result = ensure_valid(validate_snapshot(lake, SNAPSHOT, threshold=THRESHOLD))
        assert result.passed is expected["passed"]
        return

    land(lake, read_csv_folder(folder), SNAPSHOT, code_version="test")
    result = validate_snapshot(lake, SNAPSHOT, threshold=THRESHOLD)
    hits = [f for f in result.findings if f.rule_id == expected["finding"]]
    assert hits, (
        f"{case}: expected {expected['finding']}, got {[f.rule_id for f in result.findings]}"
    )
    assert hits[0].severity.value == expected["severity"]
    if not hits[0].blocking:  # row-level findings show the offending rows
        assert hits[0].count >= 1 and hits[0].examples
    assert lake.exists(result.report_key) and lake.exists(result.html_key)
    if "passed" in expected:
        assert result.passed is expected["passed"], result.summary()
    if result.passed:
        assert lake.exists(validated_manifest_key(SNAPSHOT))
        ensure_valid(result)
    else:
        assert not lake.exists(validated_manifest_key(SNAPSHOT))
        assert list(lake.list("validated")) == []
        with pytest.raises(ValidationGateError, match=re.escape(f"Snapshot {SNAPSHOT} failed")):
            ensure_valid(result)
    quarantined = sum(c["quarantined"] for c in result.row_counts.values())
    row_level = hits[0].rows is not None
    if row_level:
        assert quarantined >= 1
        table = lake.read_parquet(
            f"quarantine/{hits[0].table}/snapshot={SNAPSHOT}/{hits[0].table}.parquet"
        )
        reasons = table.column("_reasons").to_pylist()
        assert any(expected["finding"] in r for r in reasons), reasons
