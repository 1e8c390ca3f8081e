"""What the stack's servers need before the project can use them.

PostgreSQL is the machine's own server: started through the distribution's `pg_ctlcluster` when
nothing answers (and never stopped), then given the project's role and databases. SeaweedFS gets
its credentials file before it starts and the project's buckets once it answers. Every step is
idempotent, so `crm stack up` can always run again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from infra.lake import s3_client as lake_s3_client
from infra.settings import Settings
from infra.stack.errors import StackError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# A SeaweedFS restarted on old data answers before its master has re-elected itself leader and
# refuses writes until then: creating the buckets is retried once a second for this long.
BUCKETS_TIMEOUT_S = 60.0
BUCKETS_RETRY_INTERVAL_S = 1.0


# --- PostgreSQL -------------------------------------------------------------------------------
def postgres_answers(settings: Settings) -> bool:
    import psycopg

    try:
        with psycopg.connect(settings.pg_admin_dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def start_postgres(settings: Settings) -> None:
    """Start the newest installed cluster (Debian's layout); anything else is the user's call."""
    clusters = Path("/etc/postgresql")
    versions = sorted(clusters.glob("*")) if clusters.exists() else []
    if not versions or not shutil.which("pg_ctlcluster"):
        raise StackError(
            f"Nothing answers at {settings.pg_admin_dsn} and no PostgreSQL is installed. "
            "Install it (`apt-get install -y postgresql`), point CRM_PG_ADMIN_DSN at a server, "
            "or run the whole stack with `docker compose up`."
        )
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603  # fixed pg_ctlcluster argv
    if result.returncode != 0:
        raise StackError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")


def ensure_databases(settings: Settings) -> None:
    """The project's role (its password reset to the configured one) and its databases.

    The role is created without superuser, CREATEDB or CREATEROLE: it owns its databases and
    nothing else; only the admin DSN administers the server.
    """
    import psycopg
    from psycopg import sql

    user = settings.secret("pg_user")
    password = settings.secret("pg_password")
    with psycopg.connect(settings.pg_admin_dsn, autocommit=True, connect_timeout=5) as con:
        role = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        statement = (
            "ALTER ROLE {} LOGIN PASSWORD {}"
            if role
            else "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
        )
        con.execute(sql.SQL(statement).format(sql.Identifier(user), sql.Literal(password)))
        for database in settings.pg_databases:
            exists = con.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                con.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(user)
                    )
                )


# --- S3 (SeaweedFS) ---------------------------------------------------------------------------
def s3_client(settings: Settings) -> S3Client:
    """A boto3 client that fails fast: callers decide whether and how long to retry."""
    client: S3Client = lake_s3_client(settings, connect_timeout=2, read_timeout=5)
    return client


def s3_answers(settings: Settings) -> bool:
    try:
        s3_client(settings).list_buckets()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not healthy yet"
        return False


def write_s3_config(settings: Settings, path: Path) -> None:
    """SeaweedFS's identities file: one admin identity with the profile's keys, no anonymous.

    It holds the secret key, so it is readable by its owner only (0600), and written to a
    temporary file renamed over the old one: never world-readable, never half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = {
        "name": settings.secret("s3_access_key_id"),
        "credentials": [
            {
                "accessKey": settings.secret("s3_access_key_id"),
                "secretKey": settings.secret("s3_secret_access_key"),
            }
        ],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    write_private(path, json.dumps({"identities": [identity]}, indent=2).encode())


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, readable and writable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp creates the file 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_buckets(settings: Settings) -> None:
    """Create the lake's and MLflow's buckets, and prove that a write goes through."""
    from botocore.exceptions import BotoCoreError, ClientError

    retrying = Retrying(
        stop=stop_after_delay(BUCKETS_TIMEOUT_S),
        wait=wait_fixed(BUCKETS_RETRY_INTERVAL_S),
        retry=retry_if_exception_type((BotoCoreError, ClientError)),
        reraise=True,
    )
    try:
        retrying(_create_buckets, settings)
    except (BotoCoreError, ClientError) as exc:
        raise StackError(f"S3 at {settings.s3_endpoint_url} does not accept writes: {exc}") from exc


def _create_buckets(settings: Settings) -> None:
    client = s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (settings.lake_bucket, settings.mlflow_bucket):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    probe = f"_health/{os.getpid()}"
    client.put_object(Bucket=settings.lake_bucket, Key=probe, Body=b"ok")
    client.delete_object(Bucket=settings.lake_bucket, Key=probe)
