from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from infra.settings import STACK_DEFAULTS, Profile, Settings, settings_problems
from tests.support.settings import PROD_SECRETS, make, prod_settings


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
    assert s.pg_sslmode == "require"  # TLS to PostgreSQL unless told otherwise
    assert s.pg_dsn("x") == "postgresql://crm:pw@db.internal:5432/x?sslmode=require"
    assert s.prefect_database_url.endswith("/crm_prefect?ssl=require")  # asyncpg's spelling
    assert isinstance(s.api_token, SecretStr)
    assert PROD_SECRETS["api_token"] not in repr(s) + str(s)


def test_prod_refuses_to_start_without_an_api_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    with pytest.raises(ValidationError) as info:
        prod_settings(api_token=None)
    assert settings_problems(info.value) == (
        "CRM_PROFILE=prod needs CRM_API_TOKEN: set it in the environment or in .env "
        "(see .env.example)."
    )
    assert make(profile="stack").api_token is None  # only prod insists


@pytest.mark.parametrize(
    "field", ["s3_access_key_id", "s3_secret_access_key", "pg_password"], ids=str
)
def test_prod_refuses_each_default_credential_of_the_stack(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        prod_settings(**{field: STACK_DEFAULTS[field]})
    assert settings_problems(info.value) == (
        "CRM_PROFILE=prod refuses the local stack's published default credentials in "
        f"CRM_{field.upper()}: set the real ones (from your secret store) in the environment."
    )


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_prod_refuses_a_postgres_sslmode_weaker_than_require(mode: str) -> None:
    with pytest.raises(ValidationError) as info:
        prod_settings(pg_sslmode=mode)
    assert settings_problems(info.value) == (
        f"CRM_PROFILE=prod needs TLS to PostgreSQL but CRM_PG_SSLMODE={mode}: set it to "
        "require, verify-ca or verify-full, or leave it unset (prod defaults to require)."
    )


@pytest.mark.parametrize("mode", ["require", "verify-ca", "VERIFY-FULL"])
def test_prod_accepts_tls_sslmodes(mode: str) -> None:
    assert prod_settings(pg_sslmode=mode).pg_sslmode == mode.lower()


def test_prod_names_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        prod_settings(api_token="", pg_password="crm", pg_sslmode="disable")
    message = settings_problems(info.value)
    for name in ("CRM_API_TOKEN", "CRM_PG_PASSWORD", "CRM_PG_SSLMODE"):
        assert name in message


def test_sslmode_defaults_to_disable_off_prod_and_must_be_a_libpq_mode() -> None:
    assert make().pg_sslmode == make(profile="stack").pg_sslmode == "disable"
    assert "?" not in make(profile="stack").pg_dsn("x")
    with pytest.raises(ValidationError) as info:
        make(profile="stack", pg_sslmode="tls")
    assert settings_problems(info.value).startswith("CRM_PG_SSLMODE: 'tls' is not a libpq sslmode")


SPECIAL = "p@ss:w/rd#1 %?&'\""


def test_pg_dsn_url_encodes_user_and_password() -> None:
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import make_url

    s = make(profile="stack", pg_user="crm@team", pg_password=SPECIAL)
    dsn = s.pg_dsn("crm_mlflow", driver="postgresql+psycopg2")
    assert dsn.startswith("postgresql+psycopg2://crm%40team:p%40ss%3Aw%2Frd%231%20")
    url = make_url(dsn)  # how MLflow's and Prefect's SQLAlchemy read it
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "crm@team",
        SPECIAL,
        "127.0.0.1",
        5432,
        "crm_mlflow",
    )
    libpq = conninfo_to_dict(s.pg_dsn("crm_mlflow"))  # how psycopg reads it
    assert (libpq["user"], libpq["password"], libpq["dbname"]) == (
        "crm@team",
        SPECIAL,
        "crm_mlflow",
    )
    assert make_url(s.prefect_database_url).password == SPECIAL


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValidationError, match="profile"):
        make(profile="staging")


def test_env_exports_make_the_tool_clis_see_the_profile() -> None:
    env = make(profile="stack").env_exports()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "WHEN_REQUIRED"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert "AWS_ENDPOINT_URL" not in make(profile="local").env_exports()


def test_env_exports_point_the_feast_clis_duckdb_at_this_profiles_endpoint() -> None:
    env = make(profile="stack", s3_endpoint_url="http://127.0.0.1:28733").env_exports()
    assert (env["DUCKDB_S3_ENDPOINT"], env["DUCKDB_S3_USE_SSL"]) == ("127.0.0.1:28733", "false")
    prod = prod_settings().env_exports()
    assert "DUCKDB_S3_ENDPOINT" not in prod  # AWS: DuckDB's own default endpoint
    assert prod["CRM_PG_SSLMODE"] == "require"


def test_env_exports_give_the_url_encoded_user_and_password_too() -> None:
    env = make(profile="stack", pg_user="crm@team", pg_password="p@ss:w/rd#1").env_exports()
    assert (env["CRM_PG_USER"], env["CRM_PG_PASSWORD"]) == ("crm@team", "p@ss:w/rd#1")
    assert env["CRM_PG_USER_URLENCODED"] == "crm%40team"
    assert env["CRM_PG_PASSWORD_URLENCODED"] == "p%40ss%3Aw%2Frd%231"


def test_constructing_settings_does_no_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    make(home=str(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()
