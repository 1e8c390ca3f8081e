"""One settings object for every profile.

`CRM_PROFILE` picks the profile (`local`, `stack`, `cluster` or `prod`); every other value can be
overridden
by a `CRM_*` environment variable or a line in `.env`. Profiles only change *defaults*: a value
set explicitly always wins. Nothing here touches the disk or the network.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.errors import CRMError

# The checkout (or installed tree) the code runs from: the feature repo and prefect.yaml live here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Profile(StrEnum):
    LOCAL = "local"
    STACK = "stack"
    # The stack's lake, online store and registry, with Feast's Ray offline store and Ray
    # compute engine (docs/scale-out.md): a local Ray here, a Ray cluster by address in production.
    CLUSTER = "cluster"
    PROD = "prod"


class SettingsError(CRMError, ValueError):
    """A setting is missing or inconsistent; the message names the variable to set."""


# The local stack's development credentials: published here, so prod refuses them.
DEV_S3_SECRET_ACCESS_KEY = "crm-secret-key"  # nosec B105  # a published dev default
DEV_PG_PASSWORD = "crm"  # nosec B105  # a published dev default

# Values the stack profile uses unless overridden; prod has no defaults for these.
STACK_DEFAULTS: dict[str, Any] = {
    "s3_endpoint_url": "http://127.0.0.1:8333",
    "s3_access_key_id": "crm",
    "s3_secret_access_key": DEV_S3_SECRET_ACCESS_KEY,
    "pg_host": "127.0.0.1",
    "pg_port": 5432,
    "pg_user": "crm",
    "pg_password": DEV_PG_PASSWORD,
}

# Profiles that run on the local stack's services (S3 + PostgreSQL + MLflow + Prefect servers).
STACK_PROFILES = ("stack", "cluster")

# In prod each of these must come from the environment: no silent fallback to a dev value.
PROD_REQUIRED = (
    "s3_access_key_id",
    "s3_secret_access_key",
    "pg_host",
    "pg_user",
    "pg_password",
    "mlflow_tracking_uri",
    "prefect_api_url",
    "api_token",
)
# Credentials prod refuses: the stack's defaults are published in this repository.
PROD_REFUSED_DEFAULTS = ("s3_access_key_id", "s3_secret_access_key", "pg_password")

# libpq's sslmodes, weakest first; prod needs at least `require` (TLS to PostgreSQL).
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PROD_MIN_SSLMODE = "require"


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
    pg_sslmode: str = Field(
        default="disable",
        description="libpq sslmode; `require` by default in prod (which refuses anything weaker).",
    )
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
    # MLflow's HTTP client is the one layer that retries MLflow calls (no task retries them):
    # a request waits at most this long, and is tried again this many times (backoff 1, 2, 4 s).
    mlflow_request_timeout_s: int = Field(default=10, ge=1)
    mlflow_request_retries: int = Field(default=3, ge=0)
    # Every libpq connection (Feast's SQL registry, MLflow's and Prefect's clients) gives up
    # connecting after this long instead of waiting on the OS.
    pg_connect_timeout_s: int = Field(default=5, ge=2)

    # --- Local stack ports (SeaweedFS's own defaults collide with common services) -------------
    weed_master_port: int = 9333
    weed_volume_port: int = 8334
    weed_filer_port: int = 8888
    mlflow_port: int = 5000
    prefect_port: int = 4200

    # --- Ray (the `cluster` profile: docs/scale-out.md) ----------------------------------------
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join (`ray://head:10001`, `auto`); unset: start a local Ray.",
    )
    ray_num_cpus: int = Field(
        default=2, ge=1, description="CPUs a local Ray may use (ignored with CRM_RAY_ADDRESS)."
    )
    ray_object_store_mb: int = Field(
        default=512,
        ge=80,
        description="Object-store memory of a local Ray, MB (ignored with CRM_RAY_ADDRESS).",
    )

    # --- Validation ---------------------------------------------------------------------------
    quality_threshold: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Minimum quality score a snapshot must reach."
    )

    # --- Daily operation (flows/daily.py) ---------------------------------------------------
    daily_source: str = Field(
        default="synthetic",
        description="What the daily chain lands: kaggle | dir:PATH | synthetic (the demo's).",
    )
    run_wait_s: float = Field(
        default=0.0,
        ge=0.0,
        description="How long a pipeline run waits for the lake's running one (0: fail at once).",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Where a failed scheduled run is reported (JSON POST); none: logs only.",
    )
    alert_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of the alert's POST (s)."
    )

    # --- Monitoring (monitoring/, flows/monitor.py): drift against the champion's training ---
    monitor_bins: int = Field(
        default=10, ge=2, le=100, description="Quantile bins per numeric feature for PSI."
    )
    monitor_reference_rows: int = Field(
        default=5000, ge=100, description="Training rows sampled into the model's reference."
    )
    monitor_psi_threshold: float = Field(
        default=0.25, gt=0, description="PSI at or above which a feature (or the score) drifted."
    )
    monitor_p_value: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="A drifted feature also needs its KS / chi-square p-value below this.",
    )
    monitor_quality_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Drop of the quality score below the champion's training snapshot's: a breach.",
    )
    monitor_min_rows: int = Field(
        default=50, ge=1, description="Fewer current rows than this: drift is not judged."
    )
    monitor_log_days: int = Field(
        default=7, ge=1, description="Days of the served log (to the snapshot) judged for drift."
    )
    monitor_skew_sample: int = Field(
        default=500, ge=1, description="Served rows recomputed offline for the skew report."
    )

    # --- Batch scoring (serving/batch.py) --------------------------------------------------------
    batch_score_chunk_rows: int = Field(
        default=50_000,
        ge=1,
        description="Open deals joined, scored and explained at a time: memory holds one chunk.",
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
    serving_queue_limit: int = Field(
        default=64,
        gt=0,
        description="Scoring requests admitted at once (queued or running); more get 429.",
    )
    serving_batch_max_ids: int = Field(
        default=32,
        gt=0,
        description="Most ids scored in one batch (larger requests in slices): bounds how long "
        "a batch's Python steps keep the event loop, hence a 429, waiting.",
    )
    serving_max_body_bytes: int = Field(
        default=262_144, gt=0, description="Largest request body the scorer reads; more: 413."
    )
    serving_store_connect_timeout: float = Field(
        default=2.0, ge=2, description="Connect timeout to a PostgreSQL online store (s, min 2)."
    )
    serving_store_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Longest online-store read (statement timeout and deadline); then 503.",
    )
    # The prediction log (serving/prediction_log.py): every score /score and /score_batch return,
    # buffered in memory and written to the lake in batches by one background thread.
    serving_log_enabled: bool = Field(
        default=True, description="Log every served score to the lake (logs/predictions/)."
    )
    serving_log_flush_s: float = Field(
        default=5.0, gt=0, le=3600, description="Longest wait before buffered scores are written."
    )
    serving_log_max_rows: int = Field(
        default=5_000, gt=0, description="Rows that trigger a write before the flush interval."
    )
    serving_log_buffer_rows: int = Field(
        default=100_000,
        gt=0,
        description="Rows held in memory at most; beyond (lake down or slow), rows are dropped "
        "and counted.",
    )

    # --- Model registry -----------------------------------------------------------------------
    model_name: str = "crm-win-probability"
    feast_project: str = "crm"

    # --- Model gate (training/gate.py): what a model must show before it becomes champion -----
    gate_skill_margin: float = Field(
        default=0.005,
        ge=0.0,
        lt=1.0,
        description="Minimum Brier and log-loss skill over the base rate (0.005 = 0.5%).",
    )
    gate_confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="Confidence of the bootstrap intervals that must lie above 0.",
    )
    gate_bootstrap_resamples: int = Field(
        default=1000,
        ge=100,
        le=100_000,
        description="Bootstrap resamples of the test window's opportunities.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = str(data.get("profile", Profile.LOCAL.value)).lower()
        if profile == Profile.PROD.value and data.get("pg_sslmode") in (None, ""):
            data["pg_sslmode"] = PROD_MIN_SSLMODE
        if profile in STACK_PROFILES:
            derived = {
                "mlflow_tracking_uri": f"http://127.0.0.1:{data.get('mlflow_port', 5000)}",
                "prefect_api_url": f"http://127.0.0.1:{data.get('prefect_port', 4200)}/api",
            }
            for key, value in (STACK_DEFAULTS | derived).items():
                if data.get(key) in (None, ""):
                    data[key] = value
        return data

    @field_validator("pg_sslmode", mode="before")
    @classmethod
    def _known_sslmode(cls, value: Any) -> Any:
        mode = str(value).strip().lower()
        if mode not in PG_SSLMODES:
            choices = ", ".join(PG_SSLMODES)
            raise ValueError(f"{value!r} is not a libpq sslmode; use one of {choices}")
        return mode

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.profile is Profile.PROD:
            problems = _prod_problems(self)
            if problems:
                raise SettingsError(" ".join(problems))
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
        """DSN for one of the project's databases, e.g. driver `postgresql+psycopg`.

        User and password are URL-encoded (a password may hold `@ / : #`), and any sslmode but
        `disable` is in the query: `sslmode` for libpq drivers, `ssl` for asyncpg.
        """
        if not self.pg_host or not self.pg_user:
            raise SettingsError(
                f"Profile {self.profile} has no PostgreSQL: set CRM_PG_HOST and CRM_PG_USER, "
                "or use CRM_PROFILE=stack."
            )
        password = self.pg_password.get_secret_value() if self.pg_password else ""
        auth = url_quote(self.pg_user) + (f":{url_quote(password)}" if password else "")
        dsn = f"{driver}://{auth}@{self.pg_host}:{self.pg_port}/{database}"
        if self.pg_sslmode != "disable":
            dsn += f"?{'ssl' if 'asyncpg' in driver else 'sslmode'}={self.pg_sslmode}"
        return dsn

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
                # DuckDB's httpfs (inside the `feast` CLI) reads its endpoint from these, so
                # a shell reaches only the S3 server of the profile it exported.
                env["DUCKDB_S3_ENDPOINT"] = self.s3_endpoint_host or ""
                env["DUCKDB_S3_USE_SSL"] = "true" if self.s3_ssl else "false"
            # The `${CRM_PG_*}` placeholders of feature_repo/<profile>/feature_store.yaml; the
            # registry's URL takes the URL-encoded user and password.
            user = self.pg_user or ""
            password = self.pg_password.get_secret_value() if self.pg_password else ""
            env |= {
                "CRM_PG_HOST": self.pg_host or "",
                "CRM_PG_PORT": str(self.pg_port),
                "CRM_PG_USER": user,
                "CRM_PG_PASSWORD": password,
                "CRM_PG_USER_URLENCODED": url_quote(user),
                "CRM_PG_PASSWORD_URLENCODED": url_quote(password),
                "CRM_PG_DB_FEAST_ONLINE": self.pg_db_feast_online,
                "CRM_PG_DB_FEAST_REGISTRY": self.pg_db_feast_registry,
                "CRM_PG_SSLMODE": self.pg_sslmode,
            }
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.mlflow_request_timeout_s)
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.mlflow_request_retries)
        env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        env["PGCONNECT_TIMEOUT"] = str(self.pg_connect_timeout_s)
        if self.prefect_api_url:
            env["PREFECT_API_URL"] = self.prefect_api_url
        return env


def url_quote(value: str) -> str:
    """`value` as the user or password of a URL: every reserved character percent-encoded."""
    return quote(value, safe="")


def _unset(value: Any) -> bool:
    """None or empty, a secret included (`CRM_API_TOKEN=` in .env sets nothing)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def _prod_problems(settings: Settings) -> list[str]:
    """What keeps `settings` from running in prod, one sentence each, naming the variables."""
    problems = []
    missing = [name for name in PROD_REQUIRED if _unset(getattr(settings, name))]
    if missing:
        names = ", ".join(f"CRM_{name.upper()}" for name in missing)
        them = "it" if len(missing) == 1 else "them"
        problems.append(
            f"CRM_PROFILE=prod needs {names}: set {them} in the environment or in .env "
            "(see .env.example)."
        )
    defaults = [
        name
        for name in PROD_REFUSED_DEFAULTS
        if getattr(settings, name) is not None and settings.secret(name) == STACK_DEFAULTS[name]
    ]
    if defaults:
        names = ", ".join(f"CRM_{name.upper()}" for name in defaults)
        problems.append(
            f"CRM_PROFILE=prod refuses the local stack's published default credentials in "
            f"{names}: set the real ones (from your secret store) in the environment."
        )
    if PG_SSLMODES.index(settings.pg_sslmode) < PG_SSLMODES.index(PROD_MIN_SSLMODE):
        problems.append(
            f"CRM_PROFILE=prod needs TLS to PostgreSQL but CRM_PG_SSLMODE={settings.pg_sslmode}: "
            "set it to require, verify-ca or verify-full, or leave it unset (prod defaults to "
            "require)."
        )
    return problems


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
