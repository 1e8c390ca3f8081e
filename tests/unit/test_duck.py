"""DuckDB's S3 secrets: ours stay in the process, and what is stored on disk cannot capture.

No S3 server is needed: DuckDB's `which_secret` says which secret a read of a path would use.
Every test points HOME (where DuckDB keeps `~/.duckdb/stored_secrets`) at a temporary folder.
"""

from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from infra import duck
from infra.settings import Settings
from tests.support.settings import PROD_SECRETS, make, prod_settings

LAKE_OBJECT = "s3://data-lake/features/part.parquet"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def stack(port: int) -> Settings:
    return make(profile="stack", s3_endpoint_url=f"http://127.0.0.1:{port}")


def store_foreign_secret(port: int) -> None:
    """What `crm env` used to store for another instance: keys + endpoint, scoped to the lake."""
    con = duckdb.connect()
    con.execute(f"INSTALL '{duck.httpfs_extension_path()}'")
    con.execute("LOAD httpfs")
    con.execute(
        f"CREATE PERSISTENT SECRET {duck.LEGACY_PERSISTENT_SECRET} (TYPE s3, KEY_ID 'crm', "
        f"SECRET 'crm-secret-key', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', "
        "USE_SSL false, SCOPE 's3://data-lake')"
    )
    con.close()


def secret_for(con: duckdb.DuckDBPyConnection, path: str = LAKE_OBJECT) -> tuple[str, str] | None:
    row = con.execute("SELECT name, persistent FROM which_secret(?, 's3')", [path]).fetchone()
    return None if row is None else (row[0], row[1])


def stored_secrets(home: Path) -> list[Path]:
    return sorted((home / ".duckdb" / "stored_secrets").glob("*.duckdb_secret"))


def test_in_process_duckdb_ignores_a_persisted_secret_scoped_to_the_lake(home: Path) -> None:
    store_foreign_secret(8333)  # the user's own stack, on the default ports
    plain = duckdb.connect()
    plain.execute("LOAD httpfs")
    plain.execute(duck.s3_secret_sql(stack(28333)))
    # The defect: the scoped persistent secret wins over our unscoped temporary one.
    assert secret_for(plain) == (duck.LEGACY_PERSISTENT_SECRET, "PERSISTENT")

    con = duck.connect(stack(28333))
    assert secret_for(con) == ("crm_lake", "TEMPORARY")
    assert con.execute("SELECT count(*) FROM duckdb_secrets() WHERE persistent").fetchone() == (0,)
    endpoint = con.execute(
        "SELECT secret_string FROM duckdb_secrets(redact=true) WHERE name = 'crm_lake'"
    ).fetchone()
    assert endpoint is not None and "endpoint=127.0.0.1:28333" in endpoint[0]


def test_the_feature_stores_ibis_backend_ignores_persisted_secrets(home: Path) -> None:
    import ibis

    from feature_tables.store import use_lake_duckdb

    store_foreign_secret(8333)
    previous = ibis.get_backend()
    try:
        use_lake_duckdb(stack(28333))
        assert secret_for(ibis.get_backend().con) == ("crm_lake", "TEMPORARY")
    finally:
        ibis.set_backend(previous)


def test_the_stack_stores_only_the_path_style_and_drops_the_old_secret(home: Path) -> None:
    store_foreign_secret(8333)
    name = duck.persist_s3_setup(stack(28333))
    files = stored_secrets(home)
    assert [f.stem for f in files] == [name]  # the old one, keys and endpoint, is gone
    content = files[0].read_bytes()
    for leaked in (b"crm-secret-key", b"127.0.0.1", b"8333"):
        assert leaked not in content
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600

    con = duckdb.connect()  # the `feast` CLI's DuckDB: persistent secrets allowed
    assert secret_for(con) == (name, "PERSISTENT")
    secret = con.execute(
        "SELECT secret_string FROM duckdb_secrets() WHERE name = ?", [name]
    ).fetchone()
    assert secret is not None
    assert "url_style=path" in secret[0] and "scope=s3://data-lake" in secret[0]
    assert "endpoint" not in secret[0] and "key_id" not in secret[0]
    assert secret_for(con, "s3://another-bucket/x.parquet") is None


def test_the_stored_setting_is_the_same_for_every_instance(home: Path) -> None:
    first = duck.persist_s3_setup(stack(8333))
    second = duck.persist_s3_setup(stack(28733))
    assert first == second and len(stored_secrets(home)) == 1


def test_the_feast_clis_duckdb_takes_endpoint_and_keys_from_the_shell(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = stack(28733)
    duck.persist_s3_setup(settings)
    for name, value in settings.env_exports().items():
        monkeypatch.setenv(name, value)
    con = duckdb.connect()
    con.execute("LOAD httpfs")
    found = con.execute(
        "SELECT current_setting('s3_endpoint'), current_setting('s3_use_ssl'), "
        "current_setting('s3_access_key_id')"
    ).fetchone()
    assert found == ("127.0.0.1:28733", False, "crm")


@pytest.mark.parametrize("settings", [prod_settings(), make(profile="local")], ids=str)
def test_nothing_is_stored_off_the_stack_profile(home: Path, settings: Settings) -> None:
    assert duck.persist_s3_setup(settings) is None
    assert not (home / ".duckdb" / "stored_secrets").exists()


def test_crm_env_for_prod_stores_no_secret(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm.cli import app

    monkeypatch.setenv("CRM_PROFILE", "prod")
    for name, value in PROD_SECRETS.items():
        monkeypatch.setenv(f"CRM_{name.upper()}", value)
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    assert "export AWS_SECRET_ACCESS_KEY=s" in result.output
    assert not (home / ".duckdb").exists()


def test_a_quote_in_a_key_cannot_end_the_statement(home: Path) -> None:
    settings = make(profile="stack", s3_secret_access_key="it's'); DROP TABLE x; --")
    con = duck.connect(settings)
    assert secret_for(con) == ("crm_lake", "TEMPORARY")
