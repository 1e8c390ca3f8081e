"""The `validate` Prefect flow, run under a temporary Prefect server.

Marked `integration` like the `land` flow's test: starting the server takes 20-40 s on a busy
2-core machine, too slow for the unit suite. (It lives here because tests/unit/test_validation*
is this stage's file set; move it to tests/integration/ when convenient.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.validate import validate
from infra.lake import Lake
from infra.settings import Settings
from ingestion.csv_files import read_csv_folder
from ingestion.landing import land
from validation.errors import ValidationGateError

BASE = Path(__file__).resolve().parents[1] / "data" / "base"


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    monkeypatch.setenv("CRM_PROFILE", "local")
    monkeypatch.setenv("CRM_HOME", str(tmp_path / ".crm"))
    yield Lake.from_settings(Settings(_env_file=None))


def test_flow_validates_the_latest_landed_snapshot(prefect_harness, lake: Lake) -> None:
    data = read_csv_folder(BASE)
    land(lake, data, "2017-06-30", code_version="test")
    land(lake, data, "2017-12-31", code_version="test")
    summary = validate()
    assert summary["snapshot"] == "2017-12-31" and summary["passed"] is True
    assert summary["findings"]["error"] == 0 and summary["findings"]["warning"] >= 7
    assert summary["report"] == "reports/validation/snapshot=2017-12-31/report.json"
    assert lake.exists(summary["validated_manifest"])
    with pytest.raises(ValidationGateError, match="score 0.9[0-9] < threshold 0.99"):
        validate(snapshot="2017-06-30", threshold=0.99)
