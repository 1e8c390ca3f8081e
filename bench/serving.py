"""Serving benchmark (`make bench-serving`): our service vs a naive MLflow server vs BentoML empty.

On loopback, one at a time on the same machine and with the same load generator:
  (a) `bentoml serve serving.service:Scorer`: POST /score {opportunity_id}, features from Feast;
  (b) `mlflow models serve --env-manager local` of the same champion; the client sends the
      encoded feature row (how a naive project serves: features are the caller's problem);
  (c) an empty BentoML endpoint (`bench/empty_service.py`): the framework's ceiling.
Load: 1,000 sequential requests, then 5,000 at concurrency 16 and at 64 (aiohttp, bounded).
Prints p50/p95/p99 and req/s, the ratios, and writes `bench/results/serving.json`.
Uses the active profile (`CRM_PROFILE`...): its online store must be materialised and a
champion registered (`crm materialize`, `crm train`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.processes import (
    ProcessExited,
    WaitTimeout,
    start_group,
    stop_group,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serving.json"
BIN = Path(sys.executable).parent


@dataclass
class Target:
    name: str
    command: list[str]
    ready_path: str
    path: str
    bodies: list[bytes]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    label: str
    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "errors": self.errors,
            "req_per_s": round(self.requests / self.seconds, 1),
            "p50_ms": round(percentile(lat, 50), 3),
            "p95_ms": round(percentile(lat, 95), 3),
            "p99_ms": round(percentile(lat, 99), 3),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted `values` (nearest rank); NaN if there are none."""
    if not values:
        return math.nan
    index = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[index]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- inputs
def open_ids(settings: Any, limit: int) -> list[str]:
    """Open deals of the lake's opportunity feature table (the ones the service scores)."""
    from feature_tables.published import read_feature_table
    from infra.lake import Lake

    frame = read_feature_table(Lake.from_settings(settings), "opportunity").to_pandas()
    stage = frame.sort_values("event_timestamp").groupby("opportunity_id")["deal_stage"].last()
    ids = sorted(stage[~stage.isin(["Won", "Lost"])].index)
    if not ids:
        raise SystemExit("No open opportunity in the lake: run `crm land` ... `crm materialize`.")
    return ids[:limit]


def mlflow_bodies(settings: Any, ids: list[str]) -> list[bytes]:
    """The encoded feature rows a naive client would send to `mlflow models serve`."""
    from serving.scorer import open_engine

    engine = open_engine(settings)
    rows: list[list[float | None]] = []
    for collected in engine.collect(ids):
        if isinstance(collected, Exception):
            raise SystemExit(f"cannot build the naive payloads: {collected}")
        encoded = engine.encoder.encode([collected.features])[0]
        rows.append([None if math.isnan(v) else float(v) for v in encoded])
    columns = engine.encoder.columns
    return [
        json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
        for row in rows
    ]


# ---------------------------------------------------------------------------- processes
class Server:
    def __init__(self, target: Target, port: int, log_dir: Path) -> None:
        self.target = target
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{target.name.split()[0]}.log"
        self.log_path.unlink(missing_ok=True)
        self.process = start_group(
            target.command, self.log_path, cwd=ROOT, env={**os.environ, **target.env}
        )

    def wait_ready(self, timeout: float = 300) -> None:
        url = self.url + self.target.ready_path
        try:
            wait_http(url, self.process, timeout_s=timeout, what=self.target.name)
        except (ProcessExited, WaitTimeout) as exc:
            raise SystemExit(f"{exc}; see {self.log_path}") from None

    def stop(self) -> None:
        stop_group(self.process.pid, grace_s=20)  # its workers too, even if the leader is gone


# ---------------------------------------------------------------------------- load
async def load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> Run:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for n in counter:
            started = time.perf_counter()
            async with session.post(url, data=bodies[n % len(bodies)], headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Run(f"c{concurrency}", requests, concurrency, seconds, latencies, errors)


def bench_target(
    target: Target, log_dir: Path, sequential: int, requests: int, levels: list[int]
) -> dict[str, Any]:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in target.command]
    server = Server(Target(**{**target.__dict__, "command": command}), port, log_dir)
    try:
        started = time.perf_counter()
        server.wait_ready()
        startup = time.perf_counter() - started
        url = server.url + target.path
        asyncio.run(load(url, target.bodies, 200, 4))  # warm-up, not measured
        runs = {"sequential": asyncio.run(load(url, target.bodies, sequential, 1)).summary()}
        for level in levels:
            runs[f"c{level}"] = asyncio.run(load(url, target.bodies, requests, level)).summary()
        return {"startup_s": round(startup, 1), "runs": runs}
    finally:
        server.stop()


def targets(settings: Any, ids: list[str], naive: Callable[[], list[bytes]]) -> list[Target]:
    service_bodies = [json.dumps({"opportunity_id": i}).encode() for i in ids]
    return [
        Target(
            "service (a)",
            [
                str(BIN / "bentoml"),
                "serve",
                "serving.service:Scorer",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "/readyz",
            "/score",
            service_bodies,
        ),
        Target(
            "mlflow (b)",
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{settings.model_name}@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "-p",
                "{port}",
            ],
            "/ping",
            "/invocations",
            naive(),
            # mlflow starts `uvicorn` through bash: the venv's bin must be on PATH.
            {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        ),
        Target(
            "empty bentoml (c)",
            [
                str(BIN / "bentoml"),
                "serve",
                "bench.empty_service:Empty",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "/readyz",
            "/ping",
            service_bodies,
        ),
    ]


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Serving benchmark (loopback)")
    for column in ("target", "load", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for name, result in results["targets"].items():
        for label, run in result["runs"].items():
            table.add_row(
                name,
                label,
                f"{run['req_per_s']:.0f}",
                f"{run['p50_ms']:.2f}",
                f"{run['p95_ms']:.2f}",
                f"{run['p99_ms']:.2f}",
                str(run["errors"]),
            )
    console = Console()
    console.print(table)
    for key, value in results["ratios"].items():
        console.print(f"{key}: {value}")


def ratios(found: dict[str, Any], levels: list[int]) -> dict[str, float]:
    a, b, c = (found.get(k) for k in ("service (a)", "mlflow (b)", "empty bentoml (c)"))
    out: dict[str, float] = {}
    for level in ["sequential", *(f"c{n}" for n in levels)]:
        if a and b:
            out[f"{level} req/s service / mlflow"] = round(
                a["runs"][level]["req_per_s"] / b["runs"][level]["req_per_s"], 2
            )
        if a and c:
            out[f"{level} req/s service / empty bentoml"] = round(
                a["runs"][level]["req_per_s"] / c["runs"][level]["req_per_s"], 2
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--only", nargs="*", help="Subset of targets: service mlflow empty")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from infra.runtime import prepare_process
    from infra.settings import get_settings

    settings = get_settings()
    prepare_process(settings)
    ids = open_ids(settings, 1_000)
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    for target in targets(settings, ids, lambda: mlflow_bodies(settings, ids)):
        if args.only and target.name.split()[0] not in args.only:
            continue
        print(f"benchmarking {target.name} ...", flush=True)
        found[target.name] = bench_target(
            target, log_dir, args.sequential, args.requests, args.concurrency
        )
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": settings.profile.value,
        "model": settings.model_name,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "targets": found,
        "ratios": ratios(found, args.concurrency),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
