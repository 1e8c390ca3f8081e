"""The `land` Prefect flow run for real, under a temporary Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lake import Lake
from infra.layout import raw_manifest_key
from infra.settings import Settings, get_settings
from ingestion.errors import LandingError
from ingestion.landing import list_snapshots, read_ground_truth
from ingestion.tables import SALES_PIPELINE


@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CRM_PROFILE", "local")
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "crm"))
    yield get_settings()


def test_land_flow_lands_a_synthetic_snapshot(
    prefect_harness: None, local_settings: Settings
) -> None:
    from flows.land import land as land_flow

    summary = land_flow(source="synthetic", snapshot="2017-09-30", opportunities=500, seed=3)
    assert summary["snapshot"] == "2017-09-30"
    assert summary["source"] == "synthetic"
    # The generated history as of the snapshot's date: deals engaged later are not there yet.
    rows = summary["rows"][SALES_PIPELINE]
    assert 250 < rows < 500
    assert summary["manifest_key"] == raw_manifest_key("2017-09-30")
    assert summary["seconds"] > 0
    lake = Lake.from_settings(local_settings)
    assert list_snapshots(lake) == ["2017-09-30"]
    assert read_ground_truth(lake, "2017-09-30").num_rows == rows


def test_land_flow_rejects_a_bad_snapshot_before_reading(
    prefect_harness: None, local_settings: Settings
) -> None:
    from flows.land import land as land_flow

    with pytest.raises(LandingError, match="not a date YYYY-MM-DD"):
        land_flow(source="synthetic", snapshot="yesterday")
    assert list_snapshots(Lake.from_settings(local_settings)) == []
