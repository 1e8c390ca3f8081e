"""The foundation against real services: SeaweedFS, PostgreSQL, an MLflow and a Prefect server."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from infra import duck
from infra.lake import Lake, s3_filesystem
from infra.settings import Settings, url_quote
from infra.stack import Stack
from infra.stack.provision import s3_client
from tests.support.cli import ROOT, crm, run


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
    for rows in (2, 3, 4):
        lake.publish(manifest, {"tests/pub/t.parquet": pa.table({"a": list(range(rows))})})
    assert lake.read_published(manifest, "tests/pub/t.parquet").num_rows == 4
    # The committed generation and the one it replaced (kept for readers in flight, see
    # infra/lake.py); older ones are deleted.
    assert len([o for o in lake.list("tests/pub") if o.key.endswith(".parquet")]) == 2


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


# --- Secrets and isolation --------------------------------------------------------------------
def test_the_s3_credentials_file_is_readable_by_its_owner_only(stack_settings: Settings) -> None:
    path = stack_settings.stack_dir / "seaweedfs" / "s3.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_server_of_the_stack_has_the_database_password_in_its_command_line(
    stack_settings: Settings,
) -> None:
    password = stack_settings.secret("pg_password")
    secrets = {password, url_quote(password), stack_settings.secret("s3_secret_access_key")}
    stack = Stack(stack_settings)
    seen = 0
    for name in ("s3", "mlflow", "prefect"):
        pgid = int(stack.pid_file(name).read_text())
        for process in psutil.process_iter(["cmdline"]):
            try:
                if os.getpgid(process.pid) != pgid:
                    continue
            except ProcessLookupError:
                continue
            seen += 1
            argv = " ".join(process.info["cmdline"] or [])
            assert not any(s in argv for s in secrets), f"{name}: {argv}"
    assert seen >= 3


ISOLATION_OBJECT = "s3://data-lake/tests/isolation/which.parquet"


@pytest.fixture(scope="module")
def other_instance(stack_settings: Settings) -> Iterator[Settings]:
    """A second S3 server with the same bucket names, as another instance on this machine."""
    shift = 50  # between two test instances' ports (they are 100 apart)
    port = int(stack_settings.s3_endpoint_host.rsplit(":", 1)[1]) + shift  # type: ignore[union-attr]
    other = stack_settings.model_copy(
        update={
            "stack_dir": stack_settings.stack_dir / "other-instance",
            "s3_endpoint_url": f"http://127.0.0.1:{port}",
            "weed_master_port": stack_settings.weed_master_port + shift,
            "weed_volume_port": stack_settings.weed_volume_port + shift,
            "weed_filer_port": stack_settings.weed_filer_port + shift,
        }
    )
    shutil.rmtree(other.stack_dir, ignore_errors=True)
    stack = Stack(other)
    try:
        stack.up(only=["s3"])
        for settings, instance in ((stack_settings, "mine"), (other, "other")):
            pq.write_table(
                pa.table({"instance": [instance]}),
                ISOLATION_OBJECT.removeprefix("s3://"),
                filesystem=s3_filesystem(settings),
            )
        yield other
    finally:
        stack.down(only=["s3"], grace_s=0)  # a throwaway: no clean shutdown to wait for


def which_instance(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(f"SELECT instance FROM read_parquet('{ISOLATION_OBJECT}')").fetchone()
    assert row is not None
    return str(row[0])


def test_our_duckdb_reads_its_own_instance_despite_a_persisted_secret_of_another(
    stack_settings: Settings,
    other_instance: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The defect: `crm env` of one instance stored a secret scoped to `s3://data-lake` in
    ~/.duckdb, which won over the other instance's in-process secret (a 404, or its data)."""
    import ibis

    from feature_tables.store import use_lake_duckdb

    monkeypatch.setenv("HOME", str(tmp_path))
    foreign = duckdb.connect()
    foreign.execute(f"INSTALL '{duck.httpfs_extension_path()}'")
    foreign.execute("LOAD httpfs")
    foreign.execute(  # what `crm env` stored for the other instance before the fix
        "CREATE PERSISTENT SECRET crm_lake_persistent (TYPE s3, KEY_ID 'crm', "
        f"SECRET 'crm-secret-key', ENDPOINT '{other_instance.s3_endpoint_host}', "
        "URL_STYLE 'path', USE_SSL false, SCOPE 's3://data-lake')"
    )
    assert which_instance(foreign) == "other"  # what any DuckDB of this user used to get
    foreign.close()

    assert which_instance(duck.connect(stack_settings)) == "mine"
    previous = ibis.get_backend()
    try:
        use_lake_duckdb(stack_settings)  # Feast's offline store reads through this backend
        table = ibis.read_parquet(ISOLATION_OBJECT).to_pyarrow()
        assert table.column("instance").to_pylist() == ["mine"]
    finally:
        ibis.set_backend(previous)


def test_the_feast_clis_duckdb_follows_the_exports_of_its_own_shell(
    stack_env: dict[str, str], other_instance: Settings, tmp_path: Path
) -> None:
    """Both instances ran `crm env` in one HOME; a shell reads the instance it exported."""
    home = {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    other_env = {
        **stack_env,
        "CRM_S3_ENDPOINT_URL": other_instance.s3_endpoint_url or "",
        "CRM_STACK_DIR": str(other_instance.stack_dir),
    }
    script = tmp_path / "read.py"
    query = f"SELECT instance FROM read_parquet('{ISOLATION_OBJECT}')"
    script.write_text(f"import duckdb\nprint(duckdb.sql({query!r}).fetchone()[0])\n")
    for env, expected in ((other_env, "other"), (stack_env, "mine"), (other_env, "other")):
        shell = f'eval "$(crm env)" && python {script}'
        result = run(["bash", "-c", shell], env={**os.environ, **env, **home})
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == expected
    stored = sorted(p.name for p in (tmp_path / ".duckdb" / "stored_secrets").iterdir())
    assert stored == ["crm_path_style_data_lake.duckdb_secret"]  # one setting, no keys
