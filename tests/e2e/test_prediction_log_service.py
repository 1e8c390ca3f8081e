"""The prediction log in the running BentoML scorer (issue 15, 1): what it answers is logged, a
full buffer is counted on /metrics, and a SIGTERM (BentoML's shutdown hook) writes what the
buffer still holds."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from bench.serving import open_ids
from infra.lake import Lake
from infra.settings import Settings
from serving.prediction_log import read_prediction_log
from tests.support.servers import free_port, running, wait_http

DROPPED = 'crm_prediction_log_dropped_rows_total{reason="buffer_full"} 2.0'


def test_the_scorer_logs_its_answers_counts_drops_and_flushes_on_sigterm(
    e2e_profile: Settings, profile_env: dict[str, str], e2e_dir: Path
) -> None:
    ids = open_ids(e2e_profile, 3)
    port = free_port()
    bentoml = str(Path(sys.executable).parent / "bentoml")
    args = [bentoml, "serve", "serving.service:Scorer", "--port", str(port), "--host", "127.0.0.1"]
    # Nothing is written before shutdown, and the buffer holds one row: the batch's two drop.
    env = profile_env | {"CRM_SERVING_LOG_FLUSH_S": "3600", "CRM_SERVING_LOG_BUFFER_ROWS": "1"}
    log = e2e_dir / "scorer-prediction-log.log"
    lake = Lake.from_settings(e2e_profile)
    with running(args, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", 240, process, log)
        with httpx.Client(base_url=url, timeout=30) as client:
            one = client.post(
                "/score", json={"opportunity_id": ids[0]}, headers={"x-request-id": "log-e2e-1"}
            )
            batch = client.post(
                "/score_batch",
                json={"opportunity_ids": ids[1:3]},
                headers={"x-request-id": "log-e2e-2"},
            )
            # BentoML's multiprocess metrics are read from files its worker writes: poll briefly.
            deadline = time.monotonic() + 15
            while DROPPED not in (metrics := client.get("/metrics").text):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert one.status_code == 200 and batch.status_code == 200  # the callers lose nothing
        assert DROPPED in metrics, log.read_text()[-3000:]
        assert "log-e2e-1" not in set(read_prediction_log(lake)["request_id"])  # not yet written
    # `running` stops the server with SIGTERM: its shutdown hook writes the buffered row.
    logged = read_prediction_log(lake)
    mine = logged[logged["request_id"].isin(["log-e2e-1", "log-e2e-2"])]
    assert list(mine["request_id"]) == ["log-e2e-1"]
    assert list(mine["opportunity_id"]) == [ids[0]]
    assert mine["probability"].iloc[0] == one.json()["win_probability"]
    assert mine["model_version"].iloc[0] == one.json()["model_version"]
