"""The pipeline run once on the test stack, for tests that need data, features and a model."""

from __future__ import annotations

import json

import pytest

from infra.settings import Settings
from tests.conftest import crm

SNAPSHOT = "2017-12-31"


def run_step(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    result = crm(*args, "--json", env=env, timeout=900)
    if result.returncode != 0:
        pytest.fail(
            f"`crm {' '.join(args)}` failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    start = result.stdout.index("{")
    return json.loads(result.stdout[start:])  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def stack_landed(stack_env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    """Synthetic data landed and validated on the stack profile (SeaweedFS + PostgreSQL)."""
    landed = run_step(stack_env, "land", "--source", "synthetic", "--snapshot", SNAPSHOT)
    validated = run_step(stack_env, "validate", "--snapshot", SNAPSHOT)
    return {"land": landed, "validate": validated}


@pytest.fixture(scope="session")
def stack_features(stack_env: dict[str, str], stack_landed: dict) -> dict:  # type: ignore[type-arg]
    """Feature tables in S3 and the PostgreSQL online store materialised."""
    features = run_step(stack_env, "features", "--snapshot", SNAPSHOT)
    materialized = run_step(stack_env, "materialize")
    return {"features": features, "materialize": materialized}


@pytest.fixture(scope="session")
def stack_pipeline(
    stack_env: dict[str, str],
    stack_settings: Settings,
    stack_features: dict,  # type: ignore[type-arg]
) -> Settings:
    """land → validate → features → materialize → train on the stack: a champion exists."""
    run_step(stack_env, "train", "--snapshot", SNAPSHOT)
    return stack_settings
