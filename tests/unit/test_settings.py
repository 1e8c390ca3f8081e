from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import Profile, Settings
from tests.support.settings import make, prod_settings


def test_local_is_the_default_and_needs_no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_PROFILE", raising=False)
    s = make()
    assert s.profile is Profile.LOCAL
    assert not s.uses_s3
    assert s.tracking_uri.startswith("sqlite:///") and s.tracking_uri.endswith(".crm/mlflow.db")
    assert s.mlflow_artifact_root.startswith("file://")
    assert s.prefect_api_url is None  # ephemeral Prefect
    assert s.lake_root.name == "lake"


def test_stack_profile_defaults() -> None:
    s = make(profile="stack")
    assert s.uses_s3
    assert s.s3_endpoint_url == "http://127.0.0.1:8333"
    assert s.s3_endpoint_host == "127.0.0.1:8333" and not s.s3_ssl
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.prefect_api_url == "http://127.0.0.1:4200/api"
    assert s.pg_dsn(s.pg_db_mlflow) == "postgresql://crm:crm@127.0.0.1:5432/crm_mlflow"
    assert s.prefect_database_url.startswith("postgresql+asyncpg://")
    assert len(set(s.pg_databases)) == 4
    assert (s.lake_bucket, s.mlflow_bucket) == ("data-lake", "mlflow-artifacts")


def test_env_overrides_win_over_profile_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_PROFILE", "stack")
    monkeypatch.setenv("CRM_S3_ENDPOINT_URL", "https://s3.example.com")
    monkeypatch.setenv("CRM_MLFLOW_PORT", "5999")
    monkeypatch.setenv("CRM_PG_DB_MLFLOW", "other_mlflow")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.s3_endpoint_url == "https://s3.example.com" and s.s3_ssl
    assert s.tracking_uri == "http://127.0.0.1:5999"
    assert s.pg_dsn(s.pg_db_mlflow).endswith("/other_mlflow")


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CRM_PROFILE", raising=False)
    (tmp_path / ".env").write_text("CRM_PROFILE=stack\nCRM_LAKE_BUCKET=my-lake\n")
    s = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert s.profile is Profile.STACK and s.lake_bucket == "my-lake"


def test_prod_without_secrets_names_every_missing_variable() -> None:
    with pytest.raises(ValidationError) as info:
        make(profile="prod")
    message = str(info.value)
    for name in ("CRM_S3_ACCESS_KEY_ID", "CRM_PG_PASSWORD", "CRM_MLFLOW_TRACKING_URI"):
        assert name in message
    assert ".env.example" in message


def test_prod_with_secrets_has_no_dev_defaults() -> None:
    s = prod_settings()
    assert s.s3_endpoint_url is None  # the provider's default endpoint, not the dev server
    assert s.s3_ssl
    assert s.pg_dsn("x") == "postgresql://crm:pw@db.internal:5432/x"


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValidationError, match="profile"):
        make(profile="staging")


def test_env_exports_make_the_tool_clis_see_the_profile() -> None:
    env = make(profile="stack").env_exports()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "WHEN_REQUIRED"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert "AWS_ENDPOINT_URL" not in make(profile="local").env_exports()


def test_constructing_settings_does_no_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    make(home=str(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()
