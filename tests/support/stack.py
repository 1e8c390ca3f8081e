"""The test stack: a real `crm stack up` isolated from a developer's own stack.

Its own `.stack` folder, ports, PostgreSQL role and databases, all set through the same `CRM_*`
variables a user would set. Its role's password has URL syntax in it (`p@ss:w/rd#1`), so the
whole integration tier proves that every connection string encodes it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from infra.processes import port_open
from infra.settings import Settings
from tests.support.cli import ROOT, crm

SNAPSHOT = "2017-12-31"
# Several test stacks can run side by side (one per engineer's checkout or CI job):
# TEST_STACK_INSTANCE=N moves ports by 100*N and suffixes folders and databases with N.
INSTANCE = int(os.environ.get("TEST_STACK_INSTANCE", "0"))
_SUFFIX = str(INSTANCE) if INSTANCE else ""
_SHIFT = 100 * INSTANCE
TEST_STACK_ENV = {
    "CRM_PROFILE": "stack",
    "CRM_STACK_DIR": str(ROOT / f".stack-test{_SUFFIX}"),
    "CRM_HOME": str(ROOT / f".crm-test{_SUFFIX}"),
    "CRM_S3_ENDPOINT_URL": f"http://127.0.0.1:{28333 + _SHIFT}",
    "CRM_WEED_MASTER_PORT": str(29333 + _SHIFT),
    "CRM_WEED_VOLUME_PORT": str(28334 + _SHIFT),
    "CRM_WEED_FILER_PORT": str(28888 + _SHIFT),
    "CRM_MLFLOW_PORT": str(25000 + _SHIFT),
    "CRM_PREFECT_PORT": str(24200 + _SHIFT),
    "CRM_PG_DB_FEAST_ONLINE": f"crm_test{_SUFFIX}_feast_online",
    "CRM_PG_DB_FEAST_REGISTRY": f"crm_test{_SUFFIX}_feast_registry",
    "CRM_PG_DB_MLFLOW": f"crm_test{_SUFFIX}_mlflow",
    "CRM_PG_DB_PREFECT": f"crm_test{_SUFFIX}_prefect",
    # Its own role: `crm stack up` resets the role's password, so the user's `crm` is not touched.
    "CRM_PG_USER": f"crm_test{_SUFFIX}",
    "CRM_PG_PASSWORD": "p@ss:w/rd#1",
    # DuckDB's path-style setting (stored by `crm stack up`) stays out of the user's ~/.duckdb.
    "HOME": str(ROOT / f".stack-test{_SUFFIX}" / "home"),
}


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a process with `env` would read (no `.env` file)."""
    fields = {k.removeprefix("CRM_").lower(): v for k, v in env.items() if k.startswith("CRM_")}
    return Settings(**fields, _env_file=None)


# A shell that ran `eval "$(crm env)"` for the user's own stack exports that stack's endpoints
# (AWS_ENDPOINT_URL, MLFLOW_*, PREFECT_API_URL, DUCKDB_S3_*), and `crm` keeps values already
# exported: the test run drops them, so each process derives them from the test stack's
# settings. (The CRM_* inputs a user sets stay; the test stack overrides its own.)
for _name in settings_from(TEST_STACK_ENV).env_exports():
    if not _name.startswith("CRM_"):
        os.environ.pop(_name, None)


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
            assert database.startswith("crm_test"), database
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def assert_ports_closed(settings: Settings) -> None:
    from infra.stack import Stack

    for svc in Stack(settings).services:
        if svc.command is not None:
            busy = [p for p in svc.ports if port_open(p)]
            assert not busy, f"{svc.name} still listens on {busy} after `crm stack down`"
