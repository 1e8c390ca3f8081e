"""The services of the local stack: what each one is, its ports, its command, its health check.

Plain descriptions built from the settings, one function per service; `supervisor` starts and
stops them and `provision` prepares what a server needs before the project can use it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from infra.lake import S3_CHECKSUM_ENV
from infra.processes import http_ok
from infra.settings import Settings
from infra.stack import provision
from infra.stack.errors import StackError

# SeaweedFS opens a gRPC port beside each of its HTTP ports (master, volume, filer, S3), at the
# HTTP port + 10000 unless `-<server>.port.grpc` says otherwise. The stack lists them so that `up`
# refuses a port something else holds and `down` waits until they are closed too.
WEED_GRPC_PORT_OFFSET = 10_000


@dataclass
class Service:
    """One server of the stack.

    A service with a `command` is ours: `up` spawns it and `down` stops it. One without (the
    machine's PostgreSQL) is a system service: `up` may start it with `start_system`, `down`
    leaves it running.
    """

    name: str
    url: str
    ports: tuple[int, ...]  # every port it listens on
    healthy: Callable[[], bool]
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # before the command is spawned
    after_start: Callable[[], None] | None = None  # once healthy, on every `up`
    start_system: Callable[[], None] | None = None
    start_timeout_s: float = 90.0


def services(settings: Settings, root: Path) -> list[Service]:
    """The stack in start order; `root` is its state folder (`.stack/`)."""
    return [
        postgresql(settings),
        s3(settings, root / "seaweedfs"),
        mlflow(settings),
        prefect(settings, root / "prefect"),
    ]


def postgresql(settings: Settings) -> Service:
    return Service(
        name="postgresql",
        url=f"postgresql://{settings.pg_host}:{settings.pg_port}",
        ports=(settings.pg_port,),
        healthy=partial(provision.postgres_answers, settings),
        after_start=partial(provision.ensure_databases, settings),
        start_system=partial(provision.start_postgres, settings),
    )


def s3(settings: Settings, data_dir: Path) -> Service:
    """SeaweedFS in one process (`weed server`): master, volume, filer and the S3 gateway."""
    s = settings
    s3_port = int((s.s3_endpoint_host or "127.0.0.1:8333").rsplit(":", 1)[-1])
    http_ports = (s3_port, s.weed_master_port, s.weed_volume_port, s.weed_filer_port)
    grpc_ports = tuple(port + WEED_GRPC_PORT_OFFSET for port in http_ports)
    config = data_dir / "s3.json"
    return Service(
        name="s3",
        url=s.s3_endpoint_url or "",
        ports=http_ports + grpc_ports,
        healthy=partial(provision.s3_answers, settings),
        command=[
            _bin("weed"),
            "server",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={s.weed_master_port}",
            f"-volume.port={s.weed_volume_port}",
            f"-filer.port={s.weed_filer_port}",
            "-s3",
            f"-s3.port={s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=64",
            "-volume.preStopSeconds=0",
        ],
        prepare=partial(provision.write_s3_config, settings, config),
        after_start=partial(provision.ensure_buckets, settings),
        start_timeout_s=60,
    )


def _http_server(
    name: str, port: int, command: list[str], env: dict[str, str], *, health: str, api: str = ""
) -> Service:
    """A server of ours on 127.0.0.1:`port`, healthy once `health` answers 2xx."""
    base = f"http://127.0.0.1:{port}"
    return Service(
        name=name,
        url=base + api,
        ports=(port,),
        healthy=partial(http_ok, base + health),
        command=command,
        env=env,
        start_timeout_s=120,
    )


def mlflow(settings: Settings) -> Service:
    """The tracking server on PostgreSQL, proxying artifacts to the S3 bucket.

    The backend store's DSN holds the database password: it goes in the environment
    (`MLFLOW_BACKEND_STORE_URI`, which `mlflow server` reads), never on the command line, where
    any user of the machine could read it in `ps`.
    """
    s = settings
    env = {
        **_s3_env(settings),
        "MLFLOW_BACKEND_STORE_URI": s.pg_dsn(s.pg_db_mlflow, driver="postgresql+psycopg2"),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return _http_server(
        "mlflow",
        s.mlflow_port,
        [
            _bin("mlflow"),
            "server",
            "--artifacts-destination",
            f"s3://{s.mlflow_bucket}/",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(s.mlflow_port),
            "--workers",
            "1",
        ],
        env,
        health="/health",
    )


def prefect(settings: Settings, home: Path) -> Service:
    """The Prefect API server on PostgreSQL, its own `PREFECT_HOME` under the stack folder."""
    s = settings
    api = f"http://127.0.0.1:{s.prefect_port}/api"
    port = str(s.prefect_port)
    command = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", port]
    env = {
        "PREFECT_API_DATABASE_CONNECTION_URL": s.prefect_database_url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
    }
    return _http_server(
        "prefect",
        s.prefect_port,
        command,
        env,
        health="/api/health",
        api="/api",
    )


def _s3_env(settings: Settings) -> dict[str, str]:
    """What a server that writes to the bucket (MLflow's artifact proxy) needs to reach S3."""
    return {
        "AWS_ACCESS_KEY_ID": settings.secret("s3_access_key_id"),
        "AWS_SECRET_ACCESS_KEY": settings.secret("s3_secret_access_key"),
        "AWS_DEFAULT_REGION": settings.s3_region,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        **S3_CHECKSUM_ENV,
    }


def _bin(name: str) -> str:
    """A console script of this environment (weed, mlflow, prefect)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found: run `make setup` (uv sync --frozen) first.")
    return found
