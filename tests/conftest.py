"""Shared fixtures. Integration tests run against a real stack started with `crm stack up`.

The test stack is isolated from a developer's own stack: its own `.stack` folder, ports and
PostgreSQL databases, all set through the same `CRM_*` variables a user would set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.settings import Settings, get_settings

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
    # DuckDB's persistent S3 secret (written by `crm stack up`) stays out of the user's ~/.duckdb.
    "HOME": str(ROOT / ".stack-test" / "home"),
}


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(
        **{k.removeprefix("CRM_").lower(): v for k, v in env.items() if k.startswith("CRM_")}
    )


def reset_test_stack() -> None:
    """Every session starts from nothing: a leftover test stack stopped, its data and databases
    dropped (only the test's own `crm_test_*` databases), so no state leaks between runs."""
    import shutil

    import psycopg
    from psycopg import sql

    crm("stack", "down", env=TEST_STACK_ENV)
    settings = settings_from(TEST_STACK_ENV)
    shutil.rmtree(settings.stack_dir, ignore_errors=True)
    shutil.rmtree(settings.home, ignore_errors=True)
    Path(TEST_STACK_ENV["HOME"]).mkdir(parents=True, exist_ok=True)
    with psycopg.connect(settings.pg_admin_dsn, autocommit=True, connect_timeout=5) as con:
        for database in settings.pg_databases:
            assert database.startswith("crm_test_"), database
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Tests that prepare a process (export a profile's env) must not leak it into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


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
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every flow test of the session (each start costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """A running stack for the whole session; its logs are printed if `up` fails."""
    reset_test_stack()
    result = crm("stack", "up", env=TEST_STACK_ENV)
    if result.returncode != 0:
        logs = crm("stack", "logs", "-n", "60", env=TEST_STACK_ENV)
        pytest.fail(f"crm stack up failed:\n{result.stdout}\n{result.stderr}\n{logs.stdout}")
    yield dict(TEST_STACK_ENV)
    down = crm("stack", "down", env=TEST_STACK_ENV)
    assert down.returncode == 0, down.stdout + down.stderr
    assert_ports_closed(settings_from(TEST_STACK_ENV))


@pytest.fixture(scope="session")
def stack_settings(stack_env: dict[str, str]) -> Settings:
    return settings_from(stack_env)


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


@contextmanager
def local_profile_env(home: Path, **extra: str) -> Iterator[Settings]:
    """CRM_PROFILE=local with CRM_HOME=home for this process; the environment is restored after."""
    saved = dict(os.environ)
    os.environ.update({"CRM_PROFILE": "local", "CRM_HOME": str(home), **extra})
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_HOME"):  # set by an earlier prepare_process
        os.environ.pop(name, None)
    try:
        yield get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
