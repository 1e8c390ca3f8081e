"""`make pipeline` in a fresh clone (no .crm/), then an open opportunity scored over HTTP."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from infra.processes import http_ok, stop_group
from serving.client import ScoringClient
from tests.conftest import ROOT
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def clean_env() -> dict[str, str]:
    """The user's shell: none of this session's CRM_/Prefect/MLflow settings."""
    prefixes = ("CRM_", "PREFECT_", "MLFLOW_", "AWS_", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_make_pipeline_in_a_fresh_clone_then_score_over_http(tmp_path: Path) -> None:
    clone = tmp_path / "crm-feature-platform"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / ".crm").exists()

    started = time.perf_counter()
    pipeline = subprocess.run(
        ["make", "pipeline"],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    pipeline_s = time.perf_counter() - started
    assert pipeline.returncode == 0, pipeline.stdout[-4000:] + pipeline.stderr[-4000:]
    assert "crm-pipeline — snapshot" in pipeline.stdout
    print(f"make pipeline in a fresh clone: {pipeline_s:.0f} s")

    lake = clone / ".crm/lake/data-lake/validated/sales_pipeline"
    deals = pq.read_table(next(lake.rglob("*.parquet")))
    open_ids = deals.filter(pc.equal(deals["deal_stage"], "Engaging"))["opportunity_id"]
    opportunity = open_ids[0].as_py()

    port = free_port()
    log = (tmp_path / "scorer.log").open("wb")
    scorer = subprocess.Popen(
        [
            str(clone / ".venv/bin/bentoml"),
            "serve",
            "serving.service:Scorer",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=clone,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while not http_ok(f"{url}/readyz") and time.monotonic() < deadline:
            assert scorer.poll() is None, (tmp_path / "scorer.log").read_text()[-3000:]
            time.sleep(1)
        score = ScoringClient(url).score(opportunity)
        assert score.opportunity_id == opportunity
        assert 0.0 < score.win_probability < 1.0
        assert score.model_version == "1" and score.profile == "local"
    finally:
        stop_group(scorer.pid, grace_s=20)
