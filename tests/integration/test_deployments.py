"""prefect.yaml's deployments registered with the stack's Prefect server and run by a worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lake import Lake
from infra.settings import Settings
from ingestion.landing import list_snapshots
from tests.support.cli import BIN, crm, run
from tests.support.servers import running


@pytest.fixture
def worker(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with running([str(BIN / "crm"), "worker"], {**os.environ, **stack_env}, log):
        yield log


def test_deploy_then_a_worker_runs_the_land_deployment(
    stack_env: dict[str, str], stack_settings: Settings, worker: Path
) -> None:
    deployed = crm("deploy", env=stack_env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("land-daily", "validate", "materialize-daily", "train-weekly", "crm-pipeline"):
        assert name in deployed.stdout

    env = {**os.environ, **stack_settings.env_exports()}
    result = run(
        [
            BIN / "prefect",
            "deployment",
            "run",
            "land/land-daily",
            "--param",
            "snapshot=2017-01-31",
            "--param",
            "opportunities=2000",
            "--watch",
            "--watch-timeout",
            "300",
        ],
        env=env,
        timeout=360,
    )
    assert result.returncode == 0, (
        result.stdout[-2000:] + worker.read_text(errors="replace")[-3000:]
    )
    assert "Completed" in result.stdout, result.stdout[-2000:]
    assert "2017-01-31" in list_snapshots(Lake.from_settings(stack_settings))
