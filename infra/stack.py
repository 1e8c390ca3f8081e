"""The local stack without Docker: PostgreSQL, SeaweedFS (S3), an MLflow server, a Prefect server.

`up` starts what is not already healthy, waits for it and records the PID of what *it* started
under `.stack/pids/`; `down` stops only those PIDs and waits for their ports to close. Logs go to
`.stack/logs/<service>.log`. PostgreSQL is the machine's own server: `up` makes sure it answers
and creates the project's role and databases, and `down` leaves it running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import CRMError
from infra.lake import S3_CHECKSUM_ENV
from infra.processes import alive, http_ok, port_open, stop_group
from infra.settings import Settings


class StackError(CRMError):
    """A service of the local stack could not be started, checked or stopped."""


@dataclass
class Service:
    name: str
    url: str
    ports: tuple[int, ...]
    healthy: Callable[[], bool]
    command: list[str] | None = None  # None: not ours to start (PostgreSQL)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None
    after_start: Callable[[], None] | None = None
    start_timeout_s: float = 90.0


@dataclass
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None
    started_by_us: bool
    detail: str = ""


@dataclass
class StartReport:
    name: str
    action: str  # "started", "already running", "ensured"
    seconds: float


def _bin(name: str) -> str:
    """A console script of this environment (weed, mlflow, prefect)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found: run `make setup` (uv sync --frozen) first.")
    return found


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack_dir.resolve()
        self.services = self._services()

    # --- paths --------------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # --- service definitions ------------------------------------------------------------------
    def _services(self) -> list[Service]:
        s = self.settings
        s3_port = int((s.s3_endpoint_host or "127.0.0.1:8333").rsplit(":", 1)[-1])
        s3_env = {
            "AWS_ACCESS_KEY_ID": s.secret("s3_access_key_id"),
            "AWS_SECRET_ACCESS_KEY": s.secret("s3_secret_access_key"),
            "AWS_DEFAULT_REGION": s.s3_region,
            "MLFLOW_S3_ENDPOINT_URL": s.s3_endpoint_url or "",
            **S3_CHECKSUM_ENV,
        }
        weed_dir = self.root / "seaweedfs"
        mlflow_url = f"http://127.0.0.1:{s.mlflow_port}"
        prefect_url = f"http://127.0.0.1:{s.prefect_port}"
        return [
            Service(
                name="postgresql",
                url=f"postgresql://{s.pg_host}:{s.pg_port}",
                ports=(s.pg_port,),
                healthy=self._postgres_healthy,
                after_start=self._ensure_databases,
            ),
            Service(
                name="s3",
                url=s.s3_endpoint_url or "",
                ports=(
                    s3_port,
                    s.weed_master_port,
                    s.weed_volume_port,
                    s.weed_filer_port,
                    s3_port + 10000,
                    s.weed_master_port + 10000,
                    s.weed_volume_port + 10000,
                    s.weed_filer_port + 10000,
                ),
                healthy=self._s3_healthy,
                command=[
                    _bin("weed"),
                    "server",
                    f"-dir={weed_dir}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    f"-master.port={s.weed_master_port}",
                    f"-volume.port={s.weed_volume_port}",
                    f"-filer.port={s.weed_filer_port}",
                    "-s3",
                    f"-s3.port={s3_port}",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    f"-s3.config={weed_dir / 's3.json'}",
                    "-master.volumeSizeLimitMB=256",
                    "-volume.max=64",
                    "-volume.preStopSeconds=0",
                ],
                prepare=lambda: self._write_s3_config(weed_dir),
                after_start=self._ensure_buckets,
                start_timeout_s=60,
            ),
            Service(
                name="mlflow",
                url=mlflow_url,
                ports=(s.mlflow_port,),
                healthy=lambda: http_ok(f"{mlflow_url}/health"),
                command=[
                    _bin("mlflow"),
                    "server",
                    "--backend-store-uri",
                    s.pg_dsn(s.pg_db_mlflow, driver="postgresql+psycopg2"),
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
                env={**s3_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                start_timeout_s=120,
            ),
            Service(
                name="prefect",
                url=f"{prefect_url}/api",
                ports=(s.prefect_port,),
                healthy=lambda: http_ok(f"{prefect_url}/api/health"),
                command=[
                    _bin("prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(s.prefect_port),
                ],
                env={
                    "PREFECT_API_DATABASE_CONNECTION_URL": s.prefect_database_url,
                    "PREFECT_HOME": str(self.root / "prefect"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_API_URL": f"{prefect_url}/api",
                },
                start_timeout_s=120,
            ),
        ]

    def _select(self, only: Iterable[str] | None) -> list[Service]:
        if only is None:
            return self.services
        return [self.service(name) for name in only]

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        names = ", ".join(s.name for s in self.services)
        raise StackError(f"No service {name!r}; the stack has {names}.")

    # --- up -----------------------------------------------------------------------------------
    def up(
        self,
        on_event: Callable[[str], None] = lambda _msg: None,
        only: Iterable[str] | None = None,
    ) -> list[StartReport]:
        """Start every service (or `only` those named) that is not already healthy."""
        (self.root / "pids").mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        reports = []
        for svc in self._select(only):
            start = time.monotonic()
            if svc.healthy():
                action = "already running"
            elif svc.command is None:
                self._start_postgres()
                action = "started"
            else:
                busy = [p for p in svc.ports if port_open(p)]
                if busy:
                    raise StackError(
                        f"{svc.name}: port(s) {busy} are taken by something that is not a healthy "
                        f"{svc.name}. Stop it, or choose other ports in .env (see .env.example)."
                    )
                self._spawn(svc)
                action = "started"
            self._wait_healthy(svc, svc.start_timeout_s)
            if svc.after_start:
                svc.after_start()
            report = StartReport(svc.name, action, time.monotonic() - start)
            on_event(f"{svc.name}: {action} ({report.seconds:.1f} s)")
            reports.append(report)
        return reports

    def _spawn(self, svc: Service) -> None:
        assert svc.command is not None
        if svc.prepare:
            svc.prepare()
        log = self.log_file(svc.name).open("ab")
        env = {**os.environ, **svc.env}
        process = subprocess.Popen(
            svc.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.root,
            start_new_session=True,  # its own process group: `down` stops its children too
        )
        self.pid_file(svc.name).write_text(str(process.pid))

    def _wait_healthy(self, svc: Service, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if svc.healthy():
                return
            pid = self._pid(svc.name)
            if svc.command is not None and pid is not None and not alive(pid):
                raise StackError(
                    f"{svc.name} exited during start-up; see {self.log_file(svc.name)}:\n"
                    + self.tail(svc.name)
                )
            time.sleep(0.25)
        raise StackError(
            f"{svc.name} not healthy at {svc.url} after {timeout_s:.0f} s; "
            f"see {self.log_file(svc.name)}:\n" + self.tail(svc.name)
        )

    # --- down ---------------------------------------------------------------------------------
    def down(
        self,
        on_event: Callable[[str], None] = lambda _msg: None,
        only: Iterable[str] | None = None,
    ) -> list[str]:
        """Stop the services `up` started (or `only` those named), newest first."""
        stopped = []
        for svc in reversed(self._select(only)):
            pid = self._pid(svc.name)
            if pid is None:
                continue
            if alive(pid):
                stop_group(pid, grace_s=30)
            self._wait_ports_closed(svc, timeout_s=30)
            self.pid_file(svc.name).unlink(missing_ok=True)
            on_event(f"{svc.name}: stopped")
            stopped.append(svc.name)
        return stopped

    def _wait_ports_closed(self, svc: Service, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(port_open(p) for p in svc.ports):
                return
            time.sleep(0.25)
        busy = [p for p in svc.ports if port_open(p)]
        raise StackError(f"{svc.name} stopped but port(s) {busy} still accept connections.")

    # --- status -------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in self.services:
            pid = self._pid(svc.name)
            ours = pid is not None and alive(pid)
            out.append(
                ServiceStatus(
                    name=svc.name,
                    url=svc.url,
                    healthy=svc.healthy(),
                    pid=pid if ours else None,
                    started_by_us=ours,
                    detail="" if svc.command else "system service (not stopped by `down`)",
                )
            )
        return out

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_file(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    # --- PostgreSQL ---------------------------------------------------------------------------
    def _postgres_healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.settings.pg_admin_dsn, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _start_postgres(self) -> None:
        versions = (
            sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
        )
        if not versions or not shutil.which("pg_ctlcluster"):
            raise StackError(
                f"Nothing answers at {self.settings.pg_admin_dsn} and no PostgreSQL is installed. "
                "Install it (`apt-get install -y postgresql`), point CRM_PG_ADMIN_DSN at a server, "
                "or run the whole stack with `docker compose up`."
            )
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")

    def _ensure_databases(self) -> None:
        import psycopg
        from psycopg import sql

        s = self.settings
        password = s.secret("pg_password")
        user = s.secret("pg_user")
        with psycopg.connect(s.pg_admin_dsn, autocommit=True) as con:
            role = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            statement = (
                "ALTER ROLE {} LOGIN PASSWORD {}" if role else "CREATE ROLE {} LOGIN PASSWORD {}"
            )
            con.execute(sql.SQL(statement).format(sql.Identifier(user), sql.Literal(password)))
            for database in s.pg_databases:
                exists = con.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if not exists:
                    con.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(user)
                        )
                    )

    # --- S3 -----------------------------------------------------------------------------------
    def _s3_client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        for name, value in S3_CHECKSUM_ENV.items():
            os.environ.setdefault(name, value)
        s = self.settings
        return boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            aws_access_key_id=s.secret("s3_access_key_id"),
            aws_secret_access_key=s.secret("s3_secret_access_key"),
            region_name=s.s3_region,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def _s3_healthy(self) -> bool:
        try:
            self._s3_client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy yet"
            return False

    def _write_s3_config(self, weed_dir: Path) -> None:
        weed_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        identity = {
            "name": s.secret("s3_access_key_id"),
            "credentials": [
                {
                    "accessKey": s.secret("s3_access_key_id"),
                    "secretKey": s.secret("s3_secret_access_key"),
                }
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (weed_dir / "s3.json").write_text(json.dumps({"identities": [identity]}, indent=2))

    def _ensure_buckets(self, timeout_s: float = 60) -> None:
        """Create the buckets; a SeaweedFS restarted on old data answers before its master has
        re-elected itself leader, so writes are retried until they go through."""
        s = self.settings
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client = self._s3_client()
                existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                for bucket in (s.lake_bucket, s.mlflow_bucket):
                    if bucket not in existing:
                        client.create_bucket(Bucket=bucket)
                probe = f"_health/{os.getpid()}"
                client.put_object(Bucket=s.lake_bucket, Key=probe, Body=b"ok")
                client.delete_object(Bucket=s.lake_bucket, Key=probe)
                return
            except Exception as exc:  # noqa: BLE001 - retried, then reported with the log
                if time.monotonic() > deadline:
                    raise StackError(
                        f"S3 at {s.s3_endpoint_url} does not accept writes: {exc}; see "
                        f"{self.log_file('s3')}:\n{self.tail('s3')}"
                    ) from exc
                time.sleep(1)
