"""prefect.yaml's deployments registered with the stack's Prefect server, and the daily chain
run by a worker: land -> validate -> features -> materialize -> score, on the test stack.

The chain lands the same synthetic snapshot the session's other tests use (same seed and size),
so what it rewrites is what was there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feature_tables.published import feature_build
from infra.lake import Lake
from infra.settings import Settings
from ingestion.landing import list_snapshots
from tests.support.cli import BIN, crm, run
from tests.support.servers import running
from tests.support.stack import SNAPSHOT


@pytest.fixture
def worker(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with running([str(BIN / "crm"), "worker"], {**os.environ, **stack_env}, log):
        yield log


def test_deploy_then_a_worker_runs_the_daily_chain(
    stack_env: dict[str, str], stack_settings: Settings, worker: Path
) -> None:
    deployed = crm("deploy", env=stack_env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("crm-daily", "train-weekly", "land", "validate", "score", "crm-pipeline"):
        assert name in deployed.stdout

    env = {**os.environ, **stack_settings.env_exports()}
    result = run(
        [
            BIN / "prefect",
            "deployment",
            "run",
            "crm-daily/crm-daily",
            "--param",
            f"snapshot={SNAPSHOT}",
            "--watch",
            "--watch-timeout",
            "420",
        ],
        env=env,
        timeout=480,
    )
    log = worker.read_text(errors="replace")
    assert result.returncode == 0, result.stdout[-2000:] + log[-3000:]
    assert "Completed" in result.stdout, result.stdout[-2000:]
    lake = Lake.from_settings(stack_settings)
    assert SNAPSHOT in list_snapshots(lake)
    assert feature_build(lake)["snapshot"] == SNAPSHOT
    for step in ("land", "validate", "features", "materialize", "score"):
        assert f"{step} done in" in log, log[-3000:]
