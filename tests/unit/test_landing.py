"""Landing on the local lake: one manifest per snapshot, idempotent, ground truth kept apart."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from infra import clock
from infra.lake import Lake
from infra.layout import ground_truth_key, raw_key, raw_manifest_key
from infra.settings import Settings, get_settings
from ingestion import landing
from ingestion.csv_files import read_csv_folder, write_csv_folder
from ingestion.errors import LandingError, SourceError
from ingestion.landing import (
    check_snapshot,
    code_version,
    land,
    list_snapshots,
    read_ground_truth,
    read_manifest_metadata,
    read_snapshot,
)
from ingestion.source_data import SourceData
from ingestion.synthetic import generate
from ingestion.tables import SALES_PIPELINE, SCHEMAS, TABLES

SNAPSHOT = "2017-12-31"


@pytest.fixture(scope="module")
def data() -> SourceData:
    return generate(1200, seed=9)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.from_settings(Settings(profile="local", home=tmp_path / "crm"))


def test_land_publishes_the_four_tables_under_one_manifest(lake: Lake, data: SourceData) -> None:
    result = land(lake, data, SNAPSHOT, code_version="abc1234")
    assert result.manifest_key == raw_manifest_key(SNAPSHOT)
    assert result.rows == {name: data.tables[name].num_rows for name in TABLES}
    assert set(result.objects) == {raw_key(name, SNAPSHOT) for name in TABLES}
    tables = read_snapshot(lake, SNAPSHOT)
    for name in TABLES:
        assert tables[name].schema.equals(SCHEMAS[name]), name
        assert tables[name].equals(data.tables[name]), name
    summary = result.summary()
    assert summary["snapshot"] == SNAPSHOT and summary["source"] == "synthetic"
    assert summary["rows"][SALES_PIPELINE] == 1200


def test_manifest_metadata_describes_the_snapshot(lake: Lake, data: SourceData) -> None:
    before = datetime.now(UTC)
    land(lake, data, SNAPSHOT, code_version="abc1234")
    meta = read_manifest_metadata(lake, SNAPSHOT)
    assert meta["source"] == "synthetic"
    assert meta["checksums"] == data.checksums
    assert meta["rows"] == {name: data.tables[name].num_rows for name in TABLES}
    assert meta["schemas"] == {name: SCHEMAS[name].to_string() for name in TABLES}
    assert meta["code_version"] == "abc1234"
    assert meta["snapshot"] == SNAPSHOT
    assert datetime.fromisoformat(meta["landed_at"]) >= before
    assert meta["ground_truth"] == ground_truth_key(SNAPSHOT)
    body = lake.read_json(raw_manifest_key(SNAPSHOT))  # the file itself, as other stages read it
    assert body["metadata"]["rows"][SALES_PIPELINE] == 1200


def test_ground_truth_is_stored_apart_from_the_raw_tables(lake: Lake, data: SourceData) -> None:
    land(lake, data, SNAPSHOT, code_version="x")
    truth = read_ground_truth(lake, SNAPSHOT)
    assert truth.equals(data.ground_truth)
    raw_keys = [o.key for o in lake.list("raw")]
    assert raw_keys and not any("ground_truth" in key for key in raw_keys)
    for table in read_snapshot(lake, SNAPSHOT).values():
        assert "win_probability" not in table.column_names
    assert lake.exists("ground_truth/snapshot=2017-12-31/ground_truth.parquet")


def test_landing_twice_replaces_and_never_duplicates(lake: Lake, data: SourceData) -> None:
    first = land(lake, data, SNAPSHOT, code_version="x")
    second = land(lake, data, SNAPSHOT, code_version="x")
    assert first.rows == second.rows
    assert first.objects != second.objects  # a new version was written and committed
    tables = read_snapshot(lake, SNAPSHOT)
    assert {name: t.num_rows for name, t in tables.items()} == first.rows
    for name in TABLES:  # the committed version, and the one it replaced (for readers in flight)
        objects = [o.key for o in lake.list(f"raw/{name}/snapshot={SNAPSHOT}")]
        key = raw_key(name, SNAPSHOT)
        assert objects == sorted([first.objects[key], second.objects[key]]), name
    third = land(lake, data, SNAPSHOT, code_version="x")
    for name in TABLES:  # older generations are removed
        objects = [o.key for o in lake.list(f"raw/{name}/snapshot={SNAPSHOT}")]
        key = raw_key(name, SNAPSHOT)
        assert objects == sorted([second.objects[key], third.objects[key]]), name
    assert len(list(lake.list("ground_truth"))) == 1
    assert list_snapshots(lake) == [SNAPSHOT]


def test_relanding_from_real_data_drops_the_stale_ground_truth(
    lake: Lake, data: SourceData, tmp_path: Path
) -> None:
    land(lake, data, SNAPSHOT, code_version="x")
    from_csv = read_csv_folder(write_csv_folder(data.tables, tmp_path / "csv"))
    land(lake, from_csv, SNAPSHOT, code_version="x")
    assert read_manifest_metadata(lake, SNAPSHOT)["source"].startswith("dir:")
    assert read_manifest_metadata(lake, SNAPSHOT)["ground_truth"] is None
    with pytest.raises(LandingError, match="has no ground truth.*--source synthetic"):
        read_ground_truth(lake, SNAPSHOT)


def test_only_committed_snapshots_are_listed(lake: Lake, data: SourceData) -> None:
    land(lake, data, "2017-06-30", code_version="x")
    land(lake, data, SNAPSHOT, code_version="x")
    # A crashed landing leaves data objects and no manifest: not a snapshot.
    lake.write_parquet(raw_key(SALES_PIPELINE, "2018-01-31"), data.tables[SALES_PIPELINE])
    lake.put_bytes("raw/_manifests/snapshot=2018-02-28/.tmp-partial", b"{")
    assert list_snapshots(lake) == ["2017-06-30", SNAPSHOT]
    with pytest.raises(LandingError, match="run `crm land --snapshot 2018-01-31` first"):
        read_snapshot(lake, "2018-01-31")


def test_missing_snapshot_error_says_what_to_run(lake: Lake) -> None:
    with pytest.raises(
        LandingError, match=r"No landed snapshot 2017-01-31.*landed: none.*crm land"
    ):
        read_snapshot(lake, "2017-01-31")
    with pytest.raises(LandingError, match="crm land"):
        read_ground_truth(lake, "2017-01-31")


@pytest.mark.parametrize("bad", ["2017-13-01", "20171231", "latest", "2017-02-30", "", "17-1-1"])
def test_snapshot_must_be_a_date(bad: str, lake: Lake, data: SourceData) -> None:
    with pytest.raises(LandingError, match="not a date YYYY-MM-DD"):
        land(lake, data, bad, code_version="x")
    assert list(lake.list("")) == []


def test_snapshot_check_accepts_dates() -> None:
    assert check_snapshot("2017-12-31") == "2017-12-31"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", clock.today())


def test_tables_with_another_schema_are_refused(lake: Lake, data: SourceData) -> None:
    pipeline = data.tables[SALES_PIPELINE]
    wrong = pipeline.set_column(
        pipeline.schema.get_field_index("close_value"),
        "close_value",
        pipeline["close_value"].cast(pa.float64()),
    )
    bad = SourceData({**data.tables, SALES_PIPELINE: wrong}, "test", {})
    with pytest.raises(LandingError, match="sales_pipeline .*landing schema") as info:
        land(lake, bad, SNAPSHOT, code_version="x")
    assert isinstance(info.value, SourceError)  # one base exception for the package
    assert list_snapshots(lake) == []


def test_progress_bar_mode_lands_the_same(lake: Lake, data: SourceData) -> None:
    result = land(lake, data, SNAPSHOT, code_version="x", progress=True)
    assert result.rows[SALES_PIPELINE] == 1200
    assert list_snapshots(lake) == [SNAPSHOT]


def test_code_version_is_the_git_commit_or_the_package_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(landing.__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    if head:
        assert code_version() == head

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(landing.subprocess, "run", no_git)
    assert code_version() == "0.1.0"


# --- the flow's tasks without a Prefect server (the whole flow: tests/integration) --------------
@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CRM_PROFILE", "local")
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "crm"))
    yield get_settings()


def test_flow_tasks_land_through_the_settings_lake(local_settings: Settings) -> None:
    from flows.land import publish_snapshot, read_source

    data = read_source.fn("synthetic", 300, 4)
    summary = publish_snapshot.fn(data, "2017-09-30")
    assert summary["rows"][SALES_PIPELINE] == 300
    assert summary["manifest_key"] == raw_manifest_key("2017-09-30")
    assert summary["ground_truth_key"] == ground_truth_key("2017-09-30")
    lake = Lake.from_settings(local_settings)
    assert list_snapshots(lake) == ["2017-09-30"]
    assert read_manifest_metadata(lake, "2017-09-30")["code_version"] == code_version()
