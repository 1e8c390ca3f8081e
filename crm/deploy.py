"""Prefect deployments from `prefect.yaml`, and a process worker to run them.

Thin wrappers over the `prefect` CLI with the profile's environment: the Prefect server's API
URL, and `CRM_PROJECT_DIR`, which the deployments' pull step uses as the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.errors import CRMError
from infra.settings import PROJECT_ROOT, Settings

WORK_POOL = "crm-process-pool"


class DeployError(CRMError):
    """Deployments could not be registered; the message says why and what to do."""


def prefect_env(settings: Settings) -> dict[str, str]:
    if not settings.prefect_api_url:
        raise DeployError(
            f"Profile {settings.profile} has no Prefect server: deployments need one. "
            "Run `make stack-up` and use CRM_PROFILE=stack (or set CRM_PREFECT_API_URL)."
        )
    return {
        **os.environ,
        **settings.env_exports(),
        "PREFECT_API_URL": settings.prefect_api_url,
        "CRM_PROJECT_DIR": str(PROJECT_ROOT),
    }


def _prefect(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "prefect"), "--no-prompt", *args]
    return subprocess.run(  # nosec B603  # this venv's prefect, fixed arguments, no shell
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )


def deploy(settings: Settings) -> str:
    """Create the process work pool if missing, then `prefect deploy --all`; returns its output."""
    env = prefect_env(settings)
    pool = _prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite", env=env)
    if pool.returncode != 0:
        raise DeployError(f"Could not create work pool {WORK_POOL}:\n{pool.stdout}{pool.stderr}")
    result = _prefect(
        "deploy", "--all", "--prefect-file", str(PROJECT_ROOT / "prefect.yaml"), env=env
    )
    if result.returncode != 0:
        raise DeployError(f"`prefect deploy --all` failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def worker_command() -> list[str]:
    prefect = str(Path(sys.executable).parent / "prefect")
    return [prefect, "worker", "start", "--pool", WORK_POOL, "--type", "process"]
