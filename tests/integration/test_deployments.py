"""prefect.yaml's deployments registered with the stack's Prefect server and run by a worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lake import Lake
from infra.processes import stop_group
from infra.settings import Settings
from ingestion.landing import list_snapshots
from tests.conftest import ROOT, crm

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "crm"), "worker"],
            cwd=ROOT,
            env={**os.environ, **stack_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    yield log
    stop_group(process.pid, grace_s=20)


def test_deploy_then_a_worker_runs_the_land_deployment(
    stack_env: dict[str, str], stack_settings: Settings, worker: Path
) -> None:
    deployed = crm("deploy", env=stack_env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("land-daily", "validate", "materialize-daily", "train-weekly", "crm-pipeline"):
        assert name in deployed.stdout

    env = {**os.environ, **stack_settings.env_exports()}
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "prefect"),
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
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + worker.read_text(errors="replace")[-3000:]
    assert "Completed" in run.stdout, run.stdout[-2000:]
    assert "2017-01-31" in list_snapshots(Lake.from_settings(stack_settings))
