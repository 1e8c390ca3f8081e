"""prefect.yaml's deployments registered with the stack's Prefect server and driven by a worker
through two consecutive days (issue 14), on the test stack.

Day 1 (2017-11-30) and day 2 (2017-12-31) are one synthetic history as the CRM showed it on
each day: by day 2 some of day 1's open deals closed and new deals arrived. The worker runs with
a lake bucket, Feast project and model name of its own, so what it writes does not touch the
session's other tests (they share the stack, not the data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest

from feature_tables.published import feature_build
from feature_tables.store import feature_store, online_entity_rows
from infra.lake import Lake
from infra.layout import PIPELINE_RUN_LEASE, predictions_manifest_key
from infra.settings import Settings
from infra.stack.provision import s3_client
from ingestion.tables import SALES_PIPELINE, STAGES_CLOSED
from tests.support.cli import BIN, crm, run
from tests.support.servers import running
from tests.support.stack import settings_from
from validation.published import read_validated

# Several minutes: `make test-long` (hosted CI too); the chain itself runs in-process in
# tests/pipeline/test_daily_chain.py and test_incremental_days.py.
pytestmark = pytest.mark.long

DAY1, DAY2 = "2017-11-30", "2017-12-31"
OWN = {
    "CRM_LAKE_BUCKET": "daily-lake",
    "CRM_FEAST_PROJECT": "crm_daily",
    "CRM_MODEL_NAME": "crm-daily-model",
}


@pytest.fixture(scope="module")
def daily_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The test stack's environment with a lake bucket, Feast project and model of its own."""
    env = {**stack_env, **OWN}
    settings = settings_from(env)
    client = s3_client(settings)
    if settings.lake_bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=settings.lake_bucket)
    return env


@pytest.fixture(scope="module")
def worker(daily_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    deployed = crm("deploy", env=daily_env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("crm-daily", "train-weekly", "land", "validate", "score", "crm-pipeline"):
        assert name in deployed.stdout
    with running([str(BIN / "crm"), "worker"], {**os.environ, **daily_env}, log):
        yield log


def deployment_run(
    daily_env: dict[str, str], name: str, worker: Path, **params: str
) -> tuple[bool, str]:
    """`prefect deployment run NAME --watch`: whether it completed, and what it printed."""
    settings = settings_from(daily_env)
    args: list[str | Path] = [BIN / "prefect", "deployment", "run", name]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    args += ["--watch", "--watch-timeout", "420"]
    result = run(args, env={**os.environ, **settings.env_exports()}, timeout=480)
    shown = (
        result.stdout[-2000:] + "\n--- worker ---\n" + worker.read_text(errors="replace")[-3000:]
    )
    return result.returncode == 0 and "Completed" in result.stdout, shown


def test_two_days_through_the_worker(daily_env: dict[str, str], worker: Path) -> None:
    settings: Settings = settings_from(daily_env)
    lake = Lake.from_settings(settings)

    for day in (DAY1, DAY2):
        completed, shown = deployment_run(daily_env, "crm-daily/crm-daily", worker, snapshot=day)
        assert completed, shown
    assert feature_build(lake)["snapshot"] == DAY2  # Feast's sources: the newest build
    assert feature_build(lake, DAY1)["snapshot"] == DAY1  # day 1's build stays readable

    # The online store reflects day 2: deals open on day 1 and closed since are served closed,
    # day 2's new deals are there.
    first = read_validated(lake, DAY1)[SALES_PIPELINE]
    second = read_validated(lake, DAY2)[SALES_PIPELINE].to_pandas().set_index("opportunity_id")
    open_before = first.filter(pc.equal(first["deal_stage"], "Engaging"))["opportunity_id"]
    closed_since = [
        i for i in open_before.to_pylist() if second.at[i, "deal_stage"] in STAGES_CLOSED
    ]
    new = sorted(set(second.index) - set(first["opportunity_id"].to_pylist()))
    assert len(closed_since) > 20 and len(new) > 20
    store = feature_store(settings)
    rows = online_entity_rows([{"opportunity_id": i} for i in closed_since[:20] + new[:20]])
    online = store.get_online_features(
        features=["opportunity:deal_stage"], entity_rows=rows
    ).to_dict()
    assert all(s in STAGES_CLOSED for s in online["deal_stage"][:20]), online["deal_stage"][:20]
    assert all(s is not None for s in online["deal_stage"][20:])

    # Training day 1 after day 2 exists uses day 1's features (lineage says so); the `score`
    # deployment then scores both days with the champion it promoted.
    trained = crm("train", "--snapshot", DAY1, "--json", env=daily_env, timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads(trained.stdout[trained.stdout.index("{") :])
    lineage = report["lineage"]
    assert lineage["snapshot"] == lineage["feature_snapshot"] == DAY1
    assert lineage["feature_txid"] == feature_build(lake, DAY1)["txid"]
    assert report["decision"]["promoted"], report["decision"]
    for day in (DAY1, DAY2):
        completed, shown = deployment_run(daily_env, "score/score", worker, snapshot=day)
        assert completed, shown
        metadata = lake.read_manifest(predictions_manifest_key(day)).metadata
        assert metadata["rows"] > 100 and metadata["lineage"]["feature_snapshot"] == day

    # A second run while one holds the lake fails at once and names it.
    with lake.held_for_a_run(PIPELINE_RUN_LEASE, owner="flow run crm-daily/still-running (x)"):
        completed, shown = deployment_run(daily_env, "crm-daily/crm-daily", worker, snapshot=DAY2)
    assert not completed
    assert "crm-daily/still-running" in shown, shown
