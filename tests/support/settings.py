"""Settings objects for tests, read from no `.env` file."""

from __future__ import annotations

from typing import Any

from infra.settings import Settings

# What prod requires, set to values no dev default has.
PROD_SECRETS: dict[str, str] = {
    "s3_access_key_id": "k",
    "s3_secret_access_key": "s",
    "pg_host": "db.internal",
    "pg_user": "crm",
    "pg_password": "pw",
    "mlflow_tracking_uri": "https://mlflow.internal",
    "prefect_api_url": "https://prefect.internal/api",
    "api_token": "prod-token-that-is-not-a-default",
}


def make(**fields: Any) -> Settings:
    """Settings from these fields and the environment, never from a `.env` file."""
    return Settings(_env_file=None, **fields)


def prod_settings(**overrides: Any) -> Settings:
    """A valid prod profile: every required secret set."""
    return make(profile="prod", **(PROD_SECRETS | overrides))
