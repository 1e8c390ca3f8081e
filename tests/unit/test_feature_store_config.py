"""The profile's feature_store.yaml, filled from Settings (no store is opened)."""

from __future__ import annotations

import pytest

from feature_tables.errors import FeatureTablesError
from feature_tables.store import repo_config
from infra.settings import Profile
from tests.support.settings import make, prod_settings


def test_placeholders_come_from_the_settings_and_a_missing_one_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRM_PG_HOST", raising=False)
    settings = prod_settings()
    config = repo_config(settings)
    assert config.online_store.host == "db.internal"
    registry = settings.pg_db_feast_registry
    assert config.registry.path == f"postgresql+psycopg://crm:pw@db.internal:5432/{registry}"
    no_pg = settings.model_copy(update={"pg_host": None})
    with pytest.raises(FeatureTablesError, match="CRM_PG_HOST"):
        repo_config(no_pg)


@pytest.mark.parametrize("profile", ["stack", "prod"])
def test_the_postgres_profiles_materialise_through_the_bulk_engine(profile: str) -> None:
    settings = prod_settings().model_copy(update={"profile": Profile(profile)})
    config = repo_config(settings)
    assert type(config.batch_engine).__name__ == "BulkLocalComputeEngineConfig"
    assert config.batch_engine.write_concurrency == 2
    assert config.online_store.type == "feature_tables.postgres_online.PostgreSQLOnlineStore"


def test_the_local_profile_keeps_feasts_engine() -> None:
    config = repo_config(make(profile="local"))
    assert config.batch_engine_config == "local"
