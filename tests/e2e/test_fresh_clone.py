"""`make pipeline` in a fresh clone (no .crm/), then an open opportunity scored over HTTP."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from serving.client import ScoringClient
from tests.support.cli import ROOT, run
from tests.support.servers import free_port, running, wait_http

# Several minutes: `make test-long` (hosted CI too); `.ci/run` itself is `make test` on a
# fresh clone, and ../shared/tools/fresh-clone-demo times `make demo` from one.
pytestmark = pytest.mark.long


def clean_env() -> dict[str, str]:
    """The user's shell: none of this session's CRM_/Prefect/MLflow settings."""
    prefixes = ("CRM_", "PREFECT_", "MLFLOW_", "AWS_", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_make_pipeline_in_a_fresh_clone_then_score_over_http(tmp_path: Path) -> None:
    clone = tmp_path / "crm-feature-platform"
    assert run(["git", "clone", "-q", ROOT, clone]).returncode == 0
    assert not (clone / ".crm").exists()

    started = time.perf_counter()
    pipeline = run(["make", "pipeline"], env=clean_env(), cwd=clone, timeout=900)
    pipeline_s = time.perf_counter() - started
    assert pipeline.returncode == 0, pipeline.stdout[-4000:] + pipeline.stderr[-4000:]
    assert "crm-pipeline — snapshot" in pipeline.stdout
    print(f"make pipeline in a fresh clone: {pipeline_s:.0f} s")

    lake = clone / ".crm/lake/data-lake/validated/sales_pipeline"
    deals = pq.read_table(next(lake.rglob("*.parquet")))
    open_ids = deals.filter(pc.equal(deals["deal_stage"], "Engaging"))["opportunity_id"]
    opportunity = open_ids[0].as_py()

    port = free_port()
    bentoml = clone / ".venv/bin/bentoml"
    command = [bentoml, "serve", "serving.service:Scorer", "--host", "127.0.0.1", "--port", port]
    log = tmp_path / "scorer.log"
    with running([str(c) for c in command], clean_env(), log, cwd=clone) as scorer:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", 240, scorer, log)
        score = ScoringClient(url).score(opportunity)
        assert score.opportunity_id == opportunity
        assert 0.0 < score.win_probability < 1.0
        assert score.model_version == "1" and score.profile == "local"
