"""A password with URL syntax in it (`p@ss:w/rd#1`) on real PostgreSQL, through every client.

`crm stack up`'s provisioning creates the role; then each way the project connects must reach
the right server, database and role with that exact password: psycopg (the `pg_dsn` of
scripts and tests), psycopg2 through SQLAlchemy (MLflow's server), asyncpg through SQLAlchemy
(Prefect's server), Feast's SQL registry and PostgreSQL online store, and the `feast` CLI after
`eval "$(crm env)"`. This machine's PostgreSQL trusts local connections, so a password that
arrived mangled would still get in: each test also checks the password the driver parsed, and
the role's stored verifier is checked against the password itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from feature_tables.store import repo_config
from infra.settings import PROJECT_ROOT, Settings
from infra.stack import provision
from tests.support.cli import run
from tests.support.settings import make
from tests.support.stack import INSTANCE

PASSWORD = "p@ss:w/rd#1"
PREFIX = f"crm_test{INSTANCE or ''}_special"
YAML = "feature_repo/stack/feature_store.yaml"


@pytest.fixture(scope="module")
def special() -> Iterator[Settings]:
    settings = make(
        profile="stack",
        pg_user=PREFIX,
        pg_password=PASSWORD,
        pg_db_feast_online=f"{PREFIX}_feast_online",
        pg_db_feast_registry=f"{PREFIX}_feast_registry",
        pg_db_mlflow=f"{PREFIX}_mlflow",
        pg_db_prefect=f"{PREFIX}_prefect",
    )
    drop(settings)
    provision.ensure_databases(settings)
    yield settings
    drop(settings)


def drop(settings: Settings) -> None:
    with psycopg.connect(settings.pg_admin_dsn, autocommit=True, connect_timeout=5) as con:
        for database in settings.pg_databases:
            assert database.startswith(PREFIX), database
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        con.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(PREFIX)))


def verifier_matches(stored: str, user: str, password: str) -> bool:
    """Whether PostgreSQL's stored verifier (SCRAM-SHA-256 or md5) is that of `password`."""
    if stored.startswith("md5"):
        return stored == "md5" + hashlib.md5((password + user).encode()).hexdigest()
    _, params, keys = stored.split("$")
    iterations, salt = params.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hashlib.sha256(client_key).digest() == stored_key


def test_provisioning_stores_exactly_that_password_for_a_plain_role(special: Settings) -> None:
    with psycopg.connect(special.pg_admin_dsn, connect_timeout=5) as con:
        row = con.execute(
            "SELECT rolpassword, rolsuper, rolcreatedb, rolcreaterole FROM pg_authid "
            "WHERE rolname = %s",
            (PREFIX,),
        ).fetchone()
    assert row is not None
    stored, *powers = row
    assert verifier_matches(stored, PREFIX, PASSWORD)
    assert not verifier_matches(stored, PREFIX, "p%40ss%3Aw%2Frd%231")  # not the encoded form
    assert powers == [False, False, False]  # no superuser, no CREATEDB, no CREATEROLE


def test_psycopg_connects_with_the_dsn(special: Settings) -> None:
    with psycopg.connect(special.pg_dsn(special.pg_db_mlflow), connect_timeout=5) as con:
        assert con.info.password == PASSWORD
        assert con.execute("SELECT current_user, current_database()").fetchone() == (
            PREFIX,
            special.pg_db_mlflow,
        )


def test_mlflows_driver_connects_through_sqlalchemy(special: Settings) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(special.pg_dsn(special.pg_db_mlflow, driver="postgresql+psycopg2"))
    try:
        with engine.connect() as con:
            assert con.execute(text("SELECT current_user")).scalar() == PREFIX
            assert con.connection.dbapi_connection.info.password == PASSWORD  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_prefects_driver_connects_through_sqlalchemy(special: Settings) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def who() -> tuple[str, str]:
        engine = create_async_engine(special.prefect_database_url)
        try:
            async with engine.connect() as con:
                user = (await con.execute(text("SELECT current_user"))).scalar()
                raw = await con.get_raw_connection()
                params = raw.driver_connection._params  # type: ignore[union-attr]
                return str(user), params.password
        finally:
            await engine.dispose()

    assert asyncio.run(who()) == (PREFIX, PASSWORD)


def test_feasts_registry_and_online_store_connect(special: Settings) -> None:
    from feast import FeatureStore
    from feast.infra.utils.postgres.connection_utils import _get_conn

    config = repo_config(special)
    store = FeatureStore(repo_path=str(PROJECT_ROOT), config=config)
    assert store.list_feature_views() == []  # the SQL registry answered (and made its tables)
    with _get_conn(config.online_store) as con:  # type: ignore[arg-type]
        assert con.info.password == PASSWORD
        assert con.execute("SELECT current_user").fetchone() == (PREFIX,)


def test_the_feast_cli_connects_after_crm_env(special: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "CRM_PROFILE": "stack",
        "CRM_PG_USER": PREFIX,
        "CRM_PG_PASSWORD": PASSWORD,
        "CRM_PG_DB_FEAST_ONLINE": special.pg_db_feast_online,
        "CRM_PG_DB_FEAST_REGISTRY": special.pg_db_feast_registry,
    }
    result = run(
        [
            "bash",
            "-c",
            f'eval "$(crm env)" && feast -f {YAML} feature-views list',
        ],
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
