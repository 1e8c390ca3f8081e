"""The `features` and `materialize` Prefect flows, end to end on the local profile.

Runs under a temporary Prefect server (`prefect_test_harness`), which is slow to start: marked
integration. The stage logic itself is tested without Prefect in test_feature_tables.py and
test_feast_repo.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lake import Lake
from infra.layout import validated_key, validated_manifest_key
from infra.settings import get_settings
from ingestion.synthetic import generate
from ingestion.tables import TABLES
from validation.run import apply_aliases

SNAPSHOT = "2017-12-31"


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("crm-flows") / ".crm"
    saved = {k: os.environ.get(k) for k in ("CRM_HOME", "CRM_PROFILE")}
    os.environ.update({"CRM_HOME": str(home), "CRM_PROFILE": "local"})
    lake = Lake.from_settings(get_settings())
    source = generate(1500, seed=9).tables
    lake.publish(
        validated_manifest_key(SNAPSHOT),
        {validated_key(n, SNAPSHOT): apply_aliases(n, source[n])[0] for n in TABLES},
    )
    try:
        yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_features_then_materialize(harness: None, local_home: Path) -> None:
    from flows.features import features
    from flows.materialize import materialize_flow

    rows = features()
    assert rows["sales_agent_profile"] > 0
    assert rows["opportunity"] >= 1500  # every deal has at least one row
    loaded = materialize_flow()
    assert loaded["opportunity"] == 1500
    assert loaded["sales_agent_daily_stats"] == rows["sales_agent_profile"]
    assert (local_home / "feast_online_store.db").is_file()
    again = materialize_flow()
    assert again["opportunity"] == 0


def test_features_flow_reapplies_the_definitions_to_the_new_build(
    harness: None, local_home: Path
) -> None:
    """Issue 12, defect 9: after a build the registry names its physical objects, so it never
    points at objects a later build removed (a build keeps only the generation it replaced)."""
    from feature_repo.definitions import committed_feature_objects
    from feature_tables.store import feature_store
    from flows.features import features

    settings = get_settings()
    lake = Lake.from_settings(settings)
    for _ in range(3):  # three builds: the first one's objects are gone by now
        features()
        objects = committed_feature_objects(lake)
        store = feature_store(settings)
        for view in store.list_feature_views():
            path = view.batch_source.path
            assert path == lake.uri(objects[view.name])
            assert Path(path).is_file()
