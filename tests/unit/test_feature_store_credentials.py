"""Credentials with URL and YAML syntax in them reach Feast intact, from Python and from the CLI.

`feature_tables.store.repo_config` fills the placeholders after parsing the YAML; the `feast`
CLI pastes the exported values into the text first (`os.path.expandvars`), then parses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from feature_tables.store import repo_config
from infra.settings import Settings
from tests.support.settings import make, prod_settings

PASSWORD = "p@ss:w/rd#1"


def as_feast_cli_reads_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in settings.env_exports().items():
        monkeypatch.setenv(name, value)
    text = settings.feature_store_yaml.read_text()
    raw: dict[str, Any] = yaml.safe_load(os.path.expandvars(text))
    return raw


@pytest.mark.parametrize("password", [PASSWORD, "1234", "yes", "@first", 'it\'s "quoted" \\ $HOME'])
def test_python_fills_any_password_as_a_string(password: str) -> None:
    settings = make(profile="stack", pg_user="crm@team", pg_password=password)
    config = repo_config(settings)
    url = make_url(config.registry.path)
    assert (url.username, url.password, url.host, url.port) == (
        "crm@team",
        password,
        "127.0.0.1",
        5432,
    )
    assert (config.online_store.user, config.online_store.password) == ("crm@team", password)
    assert config.online_store.port == 5432
    assert config.online_store.sslmode == "disable"


@pytest.mark.parametrize("password", [PASSWORD, "1234", "@first:#/?&%"])
def test_the_feast_cli_reads_the_same_values(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make(profile="stack", pg_user="crm@team", pg_password=password)
    raw = as_feast_cli_reads_it(settings, monkeypatch)
    url = make_url(raw["registry"]["path"])
    assert (url.username, url.password, url.database) == (
        "crm@team",
        password,
        settings.pg_db_feast_registry,
    )
    online = raw["online_store"]
    assert (online["user"], online["password"], online["port"]) == ("crm@team", password, 5432)


def test_prod_asks_feast_for_tls_on_the_registry_and_the_online_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = repo_config(prod_settings(pg_password=PASSWORD))
    assert config.registry.sqlalchemy_config_kwargs["connect_args"] == {"sslmode": "require"}
    assert config.online_store.sslmode == "require"
    assert make_url(config.registry.path).password == PASSWORD
    raw = as_feast_cli_reads_it(prod_settings(pg_sslmode="verify-full"), monkeypatch)
    assert raw["registry"]["sqlalchemy_config_kwargs"]["connect_args"]["sslmode"] == "verify-full"
    assert raw["online_store"]["sslmode"] == "verify-full"


def test_crm_env_warns_when_the_feast_cli_cannot_take_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from crm.cli import app

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CRM_PROFILE", "stack")
    monkeypatch.setenv("CRM_PG_PASSWORD", "it's")
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    assert "single quote" in result.output
    assert "export CRM_PG_PASSWORD_URLENCODED=it%27s" in result.output
    monkeypatch.setenv("CRM_PG_PASSWORD", PASSWORD)
    assert "single quote" not in CliRunner().invoke(app, ["env"]).output
