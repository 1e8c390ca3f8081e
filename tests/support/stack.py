"""The test stack: a real `crm stack up` isolated from a developer's own stack.

Its own `.stack` folder, ports and PostgreSQL databases, all set through the same `CRM_*`
variables a user would set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.processes import port_open
from infra.settings import Settings
from tests.support.cli import ROOT, crm

SNAPSHOT = "2017-12-31"
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
    """The Settings a process with `env` would read (no `.env` file)."""
    fields = {k.removeprefix("CRM_").lower(): v for k, v in env.items() if k.startswith("CRM_")}
    return Settings(**fields, _env_file=None)


def reset_test_stack() -> None:
    """A leftover test stack stopped, its data and its `crm_test_*` databases dropped."""
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


def assert_ports_closed(settings: Settings) -> None:
    from infra.stack import Stack

    for svc in Stack(settings).services:
        if svc.command is not None:
            busy = [p for p in svc.ports if port_open(p)]
            assert not busy, f"{svc.name} still listens on {busy} after `crm stack down`"
