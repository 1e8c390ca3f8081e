"""The cluster profile on the test stack: Ray's workers read the S3 lake (SeaweedFS) and the
Ray engine writes the PostgreSQL online store exactly as the stack profile's local engine does.

`crm materialize --full` runs as a user runs it, once with `CRM_PROFILE=cluster` (a bounded
local Ray started and stopped by the command) and once with the stack profile; after each, an
md5 over every row of every online table must be the same.
"""

from __future__ import annotations

from typing import Any

import psutil
import psycopg
import pytest

from feature_repo.definitions import VIEW_NAMES
from infra.settings import Settings
from tests.support.cli import ROOT, crm_json

RAY_PROCESSES = ("raylet", "gcs_server")
# Not in `make test` (its 2-core time budget): `make test-scale-out` and hosted CI run it. The
# Ray store and engine themselves are checked in every run (tests/pipeline/test_ray_profile.py).
pytestmark = pytest.mark.scale_out


def _online_tables(settings: Settings) -> dict[str, tuple[int, str]]:
    """Rows and an md5 over every row (key, feature, value, time) of each view's online table."""
    digest = (
        "select count(*), md5(coalesce(string_agg(entity_key::text || feature_name || "
        "coalesce(value::text, '') || event_ts::text, ',' order by entity_key, feature_name), '')) "
        "from {table}"
    )
    with psycopg.connect(settings.pg_dsn(settings.pg_db_feast_online)) as conn:
        return {
            view: conn.execute(digest.format(table=f"{settings.feast_project}_{view}")).fetchone()  # type: ignore[misc]
            for view in VIEW_NAMES
        }


def test_ray_engine_writes_the_same_online_rows_as_the_local_engine(
    stack_env: dict[str, str], stack_settings: Settings, stack_features: dict[str, Any]
) -> None:
    cluster_env = stack_env | {
        "CRM_PROFILE": "cluster",
        "CRM_RAY_NUM_CPUS": "2",
        "CRM_RAY_OBJECT_STORE_MB": "256",
    }
    on_ray = crm_json(cluster_env, "materialize", "--full")
    ray_rows = _online_tables(stack_settings)
    locally = crm_json(stack_env, "materialize", "--full")
    local_rows = _online_tables(stack_settings)
    assert on_ray == locally
    assert ray_rows == local_rows
    assert all(rows > 0 for rows, _ in local_rows.values())
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if _ours(p)], "Ray left behind"


def _ours(process: psutil.Process) -> bool:
    """A Ray process started from this checkout's environment (other checkouts may run Ray)."""
    cmdline = " ".join(process.info.get("cmdline") or [])
    return str(ROOT) in cmdline and any(name in cmdline for name in RAY_PROCESSES)
