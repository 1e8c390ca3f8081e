"""Shared fixtures. Integration tests run against a real stack started with `crm stack up`.

The test stack is isolated from a developer's own stack: its own `.stack` folder, ports and
PostgreSQL databases, all set through the same `CRM_*` variables a user would set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_STACK_ENV = {
    "CRM_PROFILE": "stack",
    "CRM_STACK_DIR": str(ROOT / ".stack-test"),
    "CRM_HOME": str(ROOT / ".crm-test"),
    "CRM_S3_ENDPOINT_URL": "http://127.0.0.1:28333",
    "CRM_WEED_MASTER_PORT": "29333",
    "CRM_WEED_VOLUME_PORT": "28334",
    "CRM_WEED_FILER_PORT": "28888",
    "CRM_MLFLOW_PORT": "25000",
    "CRM_PREFECT_PORT": "24200",
    "CRM_PG_DB_FEAST_ONLINE": "crm_test_feast_online",
    "CRM_PG_DB_FEAST_REGISTRY": "crm_test_feast_registry",
    "CRM_PG_DB_MLFLOW": "crm_test_mlflow",
    "CRM_PG_DB_PREFECT": "crm_test_prefect",
}


def crm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the project's CLI as a user would."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "crm"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """A running stack for the whole session; its logs are printed if `up` fails."""
    result = crm("stack", "up", env=TEST_STACK_ENV)
    if result.returncode != 0:
        logs = crm("stack", "logs", "-n", "60", env=TEST_STACK_ENV)
        pytest.fail(f"crm stack up failed:\n{result.stdout}\n{result.stderr}\n{logs.stdout}")
    yield dict(TEST_STACK_ENV)
    down = crm("stack", "down", env=TEST_STACK_ENV)
    assert down.returncode == 0, down.stdout + down.stderr
    values = {k.removeprefix("CRM_").lower(): v for k, v in TEST_STACK_ENV.items()}
    assert_ports_closed(Settings(**values))


@pytest.fixture(scope="session")
def stack_settings(stack_env: dict[str, str]) -> Settings:
    values = {k.removeprefix("CRM_").lower(): v for k, v in stack_env.items()}
    return Settings(**values)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """An isolated embedded profile under a temporary folder."""
    return Settings(profile="local", home=tmp_path / ".crm", _env_file=None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On an integration failure, attach the stack's service logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "stack_env" in getattr(item, "fixturenames", ()):
        logs = crm("stack", "logs", "-n", "30", env=TEST_STACK_ENV)
        report.sections.append(("stack logs", logs.stdout))


def assert_ports_closed(settings: Settings) -> None:
    from infra.processes import port_open
    from infra.stack import Stack

    for svc in Stack(settings).services:
        if svc.command is not None:
            busy = [p for p in svc.ports if port_open(p)]
            assert not busy, f"{svc.name} still listens on {busy} after `crm stack down`"
