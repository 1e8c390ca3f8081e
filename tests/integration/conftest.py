"""The pipeline run once on the test stack, for tests that need data, features and a model."""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import Settings
from tests.support.cli import crm_json
from tests.support.stack import SNAPSHOT


@pytest.fixture(scope="session")
def stack_landed(stack_env: dict[str, str]) -> dict[str, Any]:
    """Synthetic data landed and validated on the stack profile (SeaweedFS + PostgreSQL)."""
    landed = crm_json(stack_env, "land", "--source", "synthetic", "--snapshot", SNAPSHOT)
    validated = crm_json(stack_env, "validate", "--snapshot", SNAPSHOT)
    return {"land": landed, "validate": validated}


@pytest.fixture(scope="session")
def stack_features(stack_env: dict[str, str], stack_landed: dict[str, Any]) -> dict[str, Any]:
    """Feature tables in S3 and the PostgreSQL online store materialised."""
    features = crm_json(stack_env, "features", "--snapshot", SNAPSHOT)
    materialized = crm_json(stack_env, "materialize")
    return {"features": features, "materialize": materialized}


@pytest.fixture(scope="session")
def stack_pipeline(
    stack_env: dict[str, str], stack_settings: Settings, stack_features: dict[str, Any]
) -> Settings:
    """land → validate → features → materialize → train on the stack: a champion exists."""
    crm_json(stack_env, "train", "--snapshot", SNAPSHOT)
    return stack_settings
