"""The foundation against real services: SeaweedFS, PostgreSQL, an MLflow and a Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from infra import duck
from infra.lake import Lake, s3_filesystem
from infra.settings import Settings
from infra.stack import Stack
from infra.stack.provision import s3_client
from tests.support.cli import ROOT, crm


def test_up_is_idempotent_and_status_shows_four_healthy(stack_env: dict[str, str]) -> None:
    again = crm("stack", "up", env=stack_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == 4
    status = crm("stack", "status", env=stack_env)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == 4


def test_buckets_exist_and_anonymous_access_is_refused(stack_settings: Settings) -> None:
    names = {b["Name"] for b in s3_client(stack_settings).list_buckets()["Buckets"]}
    assert {"data-lake", "mlflow-artifacts"} <= names
    wrong_keys = {"s3_access_key_id": SecretStr("nobody"), "s3_secret_access_key": SecretStr("x")}
    anonymous = s3_client(stack_settings.model_copy(update=wrong_keys))
    with pytest.raises(Exception, match="(?i)denied|invalid|signature"):
        anonymous.list_objects_v2(Bucket="data-lake")


def test_parquet_written_by_pyarrow_is_read_by_duckdb_over_httpfs(stack_settings: Settings) -> None:
    table = pa.table({"id": list(range(50_000)), "name": [f"n{i}" for i in range(50_000)]})
    pq.write_table(
        table, "data-lake/tests/duck/part.parquet", filesystem=s3_filesystem(stack_settings)
    )
    con = duck.connect(stack_settings)
    count, total = con.execute(
        "SELECT count(*), sum(id) FROM read_parquet('s3://data-lake/tests/duck/part.parquet')"
    ).fetchone()
    assert (count, total) == (50_000, sum(range(50_000)))


def test_lake_publish_and_paginated_listing_on_s3(stack_settings: Settings) -> None:
    lake = Lake.from_settings(stack_settings)
    lake.delete_prefix("tests/listing")
    keys = [f"tests/listing/k-{i:05d}.json" for i in range(1_100)]  # > one S3 page (1,000)
    for key in keys:
        lake.put_bytes(key, b"{}")
    assert [o.key for o in lake.list("tests/listing")] == keys
    manifest = "tests/pub/_manifest.json"
    lake.publish(manifest, {"tests/pub/t.parquet": pa.table({"a": [1, 2]})})
    lake.publish(manifest, {"tests/pub/t.parquet": pa.table({"a": [1, 2, 3]})})
    assert lake.read_published(manifest, "tests/pub/t.parquet").num_rows == 3
    assert len([o for o in lake.list("tests/pub") if o.key.endswith(".parquet")]) == 1


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_mlflow_run_artifact_lands_in_the_s3_bucket(
    stack_settings: Settings, tmp_path: Path
) -> None:
    env = stack_settings.env_exports()
    result = run_python(
        """
        import mlflow
        mlflow.set_experiment("stack-smoke")
        with mlflow.start_run() as run:
            mlflow.log_metric("x", 1.0)
            mlflow.log_text("hello lake", "notes/hello.txt")
        print(run.info.run_id)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = result.stdout.strip().splitlines()[-1]
    objects = s3_client(stack_settings).list_objects_v2(Bucket="mlflow-artifacts")
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert any(run_id in k and k.endswith("notes/hello.txt") for k in keys), keys


def test_prefect_flow_run_is_recorded_by_the_server(stack_settings: Settings) -> None:
    env = {**stack_settings.env_exports(), "PREFECT_HOME": str(stack_settings.stack_dir / "client")}
    result = run_python(
        """
        import asyncio
        from prefect import flow, get_client

        @flow(name="stack-smoke")
        def smoke() -> int:
            return 42

        state = smoke(return_state=True)
        async def fetch():
            async with get_client() as client:
                return await client.read_flow_run(state.state_details.flow_run_id)
        run = asyncio.run(fetch())
        print(run.state_type.value, run.name)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("COMPLETED")


def test_postgres_has_the_projects_databases(stack_settings: Settings) -> None:
    import psycopg

    for database in stack_settings.pg_databases:
        with psycopg.connect(stack_settings.pg_dsn(database), connect_timeout=3) as con:
            assert con.execute("SELECT current_user").fetchone() == (stack_settings.pg_user,)


def test_stack_records_only_what_it_started(stack_settings: Settings) -> None:
    statuses = {s.name: s for s in Stack(stack_settings).status()}
    assert not statuses["postgresql"].started_by_us  # the system's server is never stopped
    assert all(statuses[n].started_by_us for n in ("s3", "mlflow", "prefect"))
