"""One settings object for every profile.

`CRM_PROFILE` picks the profile (`local`, `stack` or `prod`); every other value can be overridden
by a `CRM_*` environment variable or a line in `.env`. Profiles only change *defaults*: a value
set explicitly always wins. Nothing here touches the disk or the network.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.errors import CRMError

# The checkout (or installed tree) the code runs from: the feature repo and prefect.yaml live here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Profile(StrEnum):
    LOCAL = "local"
    STACK = "stack"
    PROD = "prod"


class SettingsError(CRMError, ValueError):
    """A setting is missing or inconsistent; the message names the variable to set."""


# Values the stack profile uses unless overridden; prod has no defaults for these.
STACK_DEFAULTS: dict[str, Any] = {
    "s3_endpoint_url": "http://127.0.0.1:8333",
    "s3_access_key_id": "crm",
    "s3_secret_access_key": "crm-secret-key",
    "pg_host": "127.0.0.1",
    "pg_port": 5432,
    "pg_user": "crm",
    "pg_password": "crm",
}

# In prod each of these must come from the environment: no silent fallback to a dev value.
PROD_REQUIRED = (
    "s3_access_key_id",
    "s3_secret_access_key",
    "pg_host",
    "pg_user",
    "pg_password",
    "mlflow_tracking_uri",
    "prefect_api_url",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRM_", env_file=".env", extra="ignore", validate_default=True
    )

    profile: Profile = Profile.LOCAL
    home: Path = Field(default=Path(".crm"), description="Local state: lake, SQLite, artifacts.")
    stack_dir: Path = Field(default=Path(".stack"), description="PIDs and logs of `crm stack`.")

    # --- S3 data lake -------------------------------------------------------------------------
    s3_endpoint_url: str | None = None  # None in prod means the provider's default (AWS)
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_use_ssl: bool | None = None  # derived from the endpoint's scheme when unset
    lake_bucket: str = "data-lake"
    mlflow_bucket: str = "mlflow-artifacts"

    # --- PostgreSQL ---------------------------------------------------------------------------
    pg_host: str | None = None
    pg_port: int = 5432
    pg_user: str | None = None
    pg_password: SecretStr | None = None
    pg_sslmode: str = "disable"
    pg_admin_dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="Superuser DSN `crm stack up` uses to create the role and databases.",
    )
    pg_db_feast_online: str = "crm_feast_online"
    pg_db_feast_registry: str = "crm_feast_registry"
    pg_db_mlflow: str = "crm_mlflow"
    pg_db_prefect: str = "crm_prefect"

    # --- Services -----------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = None
    prefect_api_url: str | None = None

    # --- Local stack ports (SeaweedFS's own defaults collide with common services) -------------
    weed_master_port: int = 9333
    weed_volume_port: int = 8334
    weed_filer_port: int = 8888
    mlflow_port: int = 5000
    prefect_port: int = 4200

    # --- Validation ---------------------------------------------------------------------------
    quality_threshold: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Minimum quality score a snapshot must reach."
    )

    # --- Serving ------------------------------------------------------------------------------
    scorer_url: str = Field(
        default="http://127.0.0.1:3000", description="The BentoML scorer, for its clients."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token the scorer requires on scoring endpoints."
    )
    serving_access_log: bool = Field(
        default=False, description="The scorer's access log (off: it costs ~40% of throughput)."
    )
    serving_retry_seconds: float = Field(
        default=5.0, gt=0, description="Wait between attempts to load the champion at start-up."
    )
    serving_refresh_seconds: float = Field(
        default=60.0, gt=0, description="How often the scorer checks whether the champion moved."
    )
    serving_inline: bool = Field(
        default=True,
        description="Score on the event loop (fastest) instead of a worker thread.",
    )

    # --- Model registry -----------------------------------------------------------------------
    model_name: str = "crm-win-probability"
    feast_project: str = "crm"

    @model_validator(mode="before")
    @classmethod
    def _apply_profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = str(data.get("profile", Profile.LOCAL.value)).lower()
        if profile == Profile.STACK.value:
            derived = {
                "mlflow_tracking_uri": f"http://127.0.0.1:{data.get('mlflow_port', 5000)}",
                "prefect_api_url": f"http://127.0.0.1:{data.get('prefect_port', 4200)}/api",
            }
            for key, value in (STACK_DEFAULTS | derived).items():
                if data.get(key) in (None, ""):
                    data[key] = value
        return data

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.profile is Profile.PROD:
            missing = [name for name in PROD_REQUIRED if getattr(self, name) in (None, "")]
            if missing:
                names = ", ".join(f"CRM_{name.upper()}" for name in missing)
                raise SettingsError(
                    f"CRM_PROFILE=prod needs {names}: set them in the environment or in .env "
                    "(see .env.example)."
                )
        return self

    # --- Derived values -----------------------------------------------------------------------
    @property
    def uses_s3(self) -> bool:
        return self.profile is not Profile.LOCAL

    @property
    def lake_root(self) -> Path:
        """Root of the local lake: one folder per bucket, keys below it as on S3."""
        return (self.home / "lake").resolve()

    @property
    def s3_ssl(self) -> bool:
        if self.s3_use_ssl is not None:
            return self.s3_use_ssl
        return not (self.s3_endpoint_url or "https://").startswith("http://")

    @property
    def s3_endpoint_host(self) -> str | None:
        """Endpoint without scheme, as DuckDB's S3 secret wants it."""
        if not self.s3_endpoint_url:
            return None
        return self.s3_endpoint_url.split("://", 1)[-1].rstrip("/")

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        if value is None:
            raise SettingsError(f"CRM_{name.upper()} is not set for profile {self.profile}.")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    def pg_dsn(self, database: str, driver: str = "postgresql") -> str:
        """DSN for one of the project's databases, e.g. driver `postgresql+psycopg`."""
        if not self.pg_host or not self.pg_user:
            raise SettingsError(
                f"Profile {self.profile} has no PostgreSQL: set CRM_PG_HOST and CRM_PG_USER, "
                "or use CRM_PROFILE=stack."
            )
        password = self.pg_password.get_secret_value() if self.pg_password else ""
        auth = f"{self.pg_user}:{password}" if password else self.pg_user
        return f"{driver}://{auth}@{self.pg_host}:{self.pg_port}/{database}"

    @property
    def pg_databases(self) -> tuple[str, ...]:
        return (
            self.pg_db_feast_online,
            self.pg_db_feast_registry,
            self.pg_db_mlflow,
            self.pg_db_prefect,
        )

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: the server in stack/prod, SQLite under `home` locally."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> str:
        if self.uses_s3:
            return f"s3://{self.mlflow_bucket}/"
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def prefect_database_url(self) -> str:
        return self.pg_dsn(self.pg_db_prefect, driver="postgresql+asyncpg")

    @property
    def feature_store_yaml(self) -> Path:
        return PROJECT_ROOT / "feature_repo" / self.profile.value / "feature_store.yaml"

    def env_exports(self) -> dict[str, str]:
        """Environment a shell needs so `feast`, `mlflow` and `prefect` CLIs see this profile."""
        env: dict[str, str] = {"CRM_PROFILE": self.profile.value}
        if self.uses_s3:
            env |= {
                "AWS_ACCESS_KEY_ID": self.secret("s3_access_key_id"),
                "AWS_SECRET_ACCESS_KEY": self.secret("s3_secret_access_key"),
                "AWS_DEFAULT_REGION": self.s3_region,
                "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
                "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
            }
            if self.s3_endpoint_url:
                env["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
                env["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint_url
            # The `${CRM_PG_*}` placeholders of feature_repo/<profile>/feature_store.yaml.
            env |= {
                "CRM_PG_HOST": self.pg_host or "",
                "CRM_PG_PORT": str(self.pg_port),
                "CRM_PG_USER": self.pg_user or "",
                "CRM_PG_PASSWORD": self.pg_password.get_secret_value() if self.pg_password else "",
                "CRM_PG_DB_FEAST_ONLINE": self.pg_db_feast_online,
                "CRM_PG_DB_FEAST_REGISTRY": self.pg_db_feast_registry,
                "CRM_PG_SSLMODE": self.pg_sslmode,
            }
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.prefect_api_url:
            env["PREFECT_API_URL"] = self.prefect_api_url
        return env


def get_settings() -> Settings:
    """The settings of the environment as it is now (read on every call, never at import time).

    Not cached: a test or a long-lived process that changes the environment sees the change,
    and nothing has to be cleared. Reading is cheap next to any work that needs the settings.
    """
    return Settings()


def settings_problems(exc: ValidationError) -> str:
    """`CRM_FIELD: what is wrong` for each invalid setting (a profile check names its own)."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = error["loc"][0] if error["loc"] else None
        problems.append(f"CRM_{str(field).upper()}: {message}" if field else message)
    return "; ".join(problems)
