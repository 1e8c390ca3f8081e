"""Reliability scenarios of the data path (issue 12): the object store dying mid-write, and two
writers of one snapshot. Each function runs one scenario on real servers and returns its figures
and `passed`; `crm bench reliability` runs them (the fast versions run in the test suite:
tests/integration/test_landing_s3.py).

Every scenario takes a `Context` (bench/reliability/context.py): `ctx.settings` is the active
profile's (its S3 credentials, and for `concurrent_land` its Prefect server), `ctx.workdir` a
folder of the scenario's own, `ctx.env` extra environment for the `crm` processes. `SCENARIOS`
maps their names to them with the bench's sizes. S3 is killed only on a SeaweedFS the scenario
starts itself, under the workdir on free ports, so the profile's own stack and data are never
touched:

- `s3_killed_mid_land`: SeaweedFS is SIGKILLed after two of the four tables of a re-landing are
  written. The landing fails within the lake's retry budget with a one-line error; after a
  restart the snapshot is the previous landing, whole; the rerun commits the new one whole.
- `s3_killed_mid_feature_write`: the same, after three of the eight feature views of a new
  build: the previous build stays whole (no view from the other snapshot), the Feast sources
  resolve to existing objects, and the rerun commits the new build.
- `concurrent_land`: two `crm land` processes of one snapshot, with different data, at once
  (both reach the publish together: same amount of work). Either one is refused with "... is
  being written by ...", or they ran one after the other; the committed snapshot is exactly one
  writer's data, every object its manifest lists exists, nothing else is left behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import SecretStr

from bench.reliability.context import Context
from feature_repo.definitions import feature_objects
from feature_tables.build import build_feature_tables
from feature_tables.published import feature_build, read_feature_table
from infra.lake import Lake, LakeError
from infra.layout import (
    features_manifest_key,
    lease_key,
    publish_lease_name,
    raw_key,
    raw_manifest_key,
)
from infra.settings import Profile, Settings
from infra.stack import Stack
from ingestion import landing
from ingestion.synthetic import generate
from ingestion.tables import TABLES
from validation.run import validate_snapshot

BIN = Path(sys.executable).parent
SNAPSHOT = "2017-12-31"
EARLIER = "2017-09-30"
# Objects a table or view keeps after a publish: the committed version and the one it replaced.
GENERATIONS = 2


# --- a SeaweedFS of the scenario's own ------------------------------------------------------------
def _free_port_block(count: int) -> list[int]:
    """`count` free ports p whose gRPC twins p + 10000 (SeaweedFS opens both) are free too."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20_000, 40_000)  # nosec B311  # a port, not a secret
        if port in chosen or not all(_port_free(p) for p in (port, port + 10_000)):
            continue
        chosen.append(port)
    return chosen


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def private_s3(settings: Settings, folder: Path) -> Iterator[tuple[Stack, Settings]]:
    """A SeaweedFS under `folder` with `settings`' S3 keys; stopped (and its ports closed) after."""
    s3_port, master, volume, filer = _free_port_block(4)
    own = Settings(
        profile=Profile.STACK,
        stack_dir=folder,
        home=folder / "home",
        s3_endpoint_url=f"http://127.0.0.1:{s3_port}",
        s3_access_key_id=SecretStr(settings.secret("s3_access_key_id")),
        s3_secret_access_key=SecretStr(settings.secret("s3_secret_access_key")),
        s3_region=settings.s3_region,
        lake_bucket=settings.lake_bucket,
        weed_master_port=master,
        weed_volume_port=volume,
        weed_filer_port=filer,
        _env_file=None,  # type: ignore[call-arg]
    )
    stack = Stack(own)
    stack.up(only=["s3"])
    try:
        yield stack, own
    finally:
        stack.down(only=["s3"], grace_s=0)  # a throwaway: no clean shutdown to wait for


def kill_s3(stack: Stack) -> None:
    """SIGKILL the whole SeaweedFS process group: no clean shutdown, no flush."""
    pid = int(stack.pid_file("s3").read_text())
    os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # reaped already
        os.waitpid(pid, 0)


def _killed_midway(
    lake: Lake, stack: Stack, objects: int, write: Callable[[], object]
) -> tuple[str | None, float, float]:
    """Run `write` with the server SIGKILLed after its `objects`-th Parquet object, then start
    the server again (same data folder: it comes back with what it had). The error `write`
    ended with (None if it did not fail), the seconds it took to fail, and to restart."""
    _kill_after(lake, stack, objects)
    started = time.perf_counter()
    try:
        write()
        error = None
    except LakeError as exc:
        error = str(exc)
    seconds_to_fail = time.perf_counter() - started
    started = time.perf_counter()
    stack.up(only=["s3"])
    return error, seconds_to_fail, time.perf_counter() - started


def _kill_after(lake: Lake, stack: Stack, objects: int) -> None:
    """Make `lake` SIGKILL the server right after its `objects`-th Parquet object is written."""
    real = lake.write_parquet
    written = 0

    def write_then_kill(key: str, table: pa.Table) -> None:
        nonlocal written
        real(key, table)
        written += 1
        if written == objects:
            kill_s3(stack)

    lake.write_parquet = write_then_kill  # type: ignore[method-assign]


def _versions(lake: Lake, folder: str) -> int:
    return sum(1 for o in lake.list(folder) if o.key.endswith(".parquet"))


def _leftovers(lake: Lake, manifest_key: str) -> dict[str, Any]:
    """What a finished publish must not leave: its lease, objects beyond two generations."""
    manifest = lake.read_manifest(manifest_key)
    folders = {key.rsplit("/", 1)[0] for key in manifest.objects}
    return {
        "lease_left": lake.exists(lease_key(publish_lease_name(manifest_key))),
        "max_versions_per_object": max(_versions(lake, f) for f in folders),
        "missing_objects": [k for k in manifest.objects.values() if not lake.exists(k)],
    }


# --- scenarios ------------------------------------------------------------------------------------
def s3_killed_mid_land(ctx: Context, *, opportunities: int = 20_000) -> dict[str, Any]:
    """SeaweedFS killed after 2 of 4 tables of a re-landing: nothing half-published, rerun whole."""
    with private_s3(ctx.settings, ctx.workdir / "s3-killed-mid-land") as (stack, s3):
        lake = Lake.from_settings(s3)
        first = generate(opportunities, seed=1)
        landing.land(lake, first, SNAPSHOT, code_version="bench")
        before = lake.read_manifest(raw_manifest_key(SNAPSHOT))

        second = generate(opportunities + opportunities // 2, seed=2)
        error, seconds_to_fail, restart_s = _killed_midway(
            lake, stack, 2, lambda: landing.land(lake, second, SNAPSHOT, code_version="bench")
        )

        lake = Lake.from_settings(s3)
        after_crash = lake.read_manifest(raw_manifest_key(SNAPSHOT))
        seen = landing.read_snapshot(lake, SNAPSHOT)
        previous_intact = after_crash.txid == before.txid and all(
            seen[name].equals(first.tables[name]) for name in TABLES
        )
        started = time.perf_counter()
        landing.land(lake, second, SNAPSHOT, code_version="bench")
        rerun_s = time.perf_counter() - started
        reread = landing.read_snapshot(lake, SNAPSHOT)
        rerun_whole = all(reread[name].equals(second.tables[name]) for name in TABLES)
        left = _leftovers(lake, raw_manifest_key(SNAPSHOT))
        snapshots = landing.list_snapshots(lake)
    passed = (
        error is not None
        and "\n" not in error
        and previous_intact
        and rerun_whole
        and snapshots == [SNAPSHOT]
        and not left["lease_left"]
        and not left["missing_objects"]
        and left["max_versions_per_object"] <= GENERATIONS
    )
    return {
        "scenario": "S3 (SeaweedFS) killed mid-land",
        "rows": {name: second.tables[name].num_rows for name in TABLES},
        "tables_written_before_kill": 2,
        "error": error,
        "seconds_to_fail": round(seconds_to_fail, 2),
        "s3_restart_s": round(restart_s, 2),
        "previous_snapshot_intact": previous_intact,
        "rerun_s": round(rerun_s, 2),
        "rerun_whole": rerun_whole,
        **left,
        "passed": passed,
    }


def s3_killed_mid_feature_write(ctx: Context, *, opportunities: int = 5_000) -> dict[str, Any]:
    """SeaweedFS killed after 3 of 8 views of a new feature build: the previous build stays
    whole (no view from the other snapshot), the rerun commits the new one whole."""
    with private_s3(ctx.settings, ctx.workdir / "s3-killed-mid-features") as (stack, s3):
        lake = Lake.from_settings(s3)
        data = generate(opportunities, seed=3)
        for snapshot in (EARLIER, SNAPSHOT):
            landing.land(lake, data, snapshot, code_version="bench")
            validate_snapshot(lake, snapshot, threshold=0.0)
        build_feature_tables(lake, EARLIER)
        before = feature_build(lake)  # the current build: EARLIER's

        error, seconds_to_fail, restart_s = _killed_midway(
            lake, stack, 3, lambda: build_feature_tables(lake, SNAPSHOT)
        )

        lake = Lake.from_settings(s3)
        after_crash = feature_build(lake)
        newest = _newest_rows(lake)
        one_snapshot = set(newest.values()) == {f"{EARLIER} 23:59:59"}
        sources_exist = all(lake.exists(key) for key in feature_objects(lake).values())
        previous_intact = after_crash["txid"] == before["txid"] and one_snapshot and sources_exist

        started = time.perf_counter()
        rows = build_feature_tables(lake, SNAPSHOT)
        rerun_s = time.perf_counter() - started
        rerun_whole = (
            feature_build(lake)["snapshot"] == SNAPSHOT
            and set(_newest_rows(lake).values()) == {f"{SNAPSHOT} 23:59:59"}
            and all(lake.exists(key) for key in feature_objects(lake).values())
        )
        left = _leftovers(lake, features_manifest_key(SNAPSHOT))
    passed = (
        error is not None
        and "\n" not in error
        and previous_intact
        and rerun_whole
        and not left["lease_left"]
        and not left["missing_objects"]
        and left["max_versions_per_object"] <= GENERATIONS
    )
    return {
        "scenario": "S3 (SeaweedFS) killed mid-feature-write",
        "views": len(rows),
        "feature_rows": sum(rows.values()),
        "views_written_before_kill": 3,
        "error": error,
        "seconds_to_fail": round(seconds_to_fail, 2),
        "s3_restart_s": round(restart_s, 2),
        "previous_build_intact": previous_intact,
        "newest_row_per_view_after_crash": sorted(set(newest.values())),
        "rerun_s": round(rerun_s, 2),
        "rerun_whole": rerun_whole,
        **left,
        "passed": passed,
    }


def _newest_rows(lake: Lake) -> dict[str, str]:
    """Per dated view of the committed build, its newest event time (the snapshot it ran to)."""
    newest = {}
    for view in feature_objects(lake):
        table = read_feature_table(lake, view)
        if view.endswith("_profile"):
            continue  # static rows, stamped 2000-01-01 whatever the snapshot
        stamp = max(table.column("event_timestamp").to_pylist())
        newest[view] = f"{stamp:%Y-%m-%d %H:%M:%S}"
    return newest


def concurrent_land(
    ctx: Context, *, opportunities: int = 300_000, rounds: int = 3
) -> dict[str, Any]:
    """Two `crm land` of one snapshot at once, each with other data: one wins, nothing is lost.

    Runs up to `rounds` times until the two publishes overlap (one is refused); a round where
    they did not overlap must have committed the second one whole. The processes land into a
    SeaweedFS of the scenario's own; they run their flows on the profile's Prefect server
    (their environment: this process's, the profile's exports, `ctx.env`).
    """
    workdir = ctx.workdir
    base_env = {**os.environ, **ctx.settings.env_exports(), **ctx.env}
    outcomes: list[dict[str, Any]] = []
    with private_s3(ctx.settings, workdir / "s3-concurrent-land") as (_, s3):
        s3_env = {k: v for k, v in s3.env_exports().items() if k.startswith(("AWS_", "DUCKDB_S3_"))}
        child_env = {
            **base_env,
            **s3_env,  # the private SeaweedFS; Prefect, PostgreSQL stay the profile's
            "CRM_PROFILE": "stack",
            "CRM_S3_ENDPOINT_URL": s3.s3_endpoint_url or "",
        }
        if not child_env.get("PREFECT_API_URL"):  # no server: each process runs its own
            child_env.pop("PREFECT_API_URL", None)
            child_env["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "true"
        lake = Lake.from_settings(s3)
        for round_ in range(rounds):
            outcome = _land_twice(lake, child_env, workdir, opportunities, seeds=(10 + round_, 20))
            outcomes.append(outcome)
            if outcome["refused"] == 1:
                break
    overlapped = [o for o in outcomes if o["refused"] == 1]
    passed = bool(outcomes) and all(o["consistent"] for o in outcomes) and bool(overlapped)
    return {
        "scenario": "two concurrent `crm land` of one snapshot",
        "opportunities": opportunities,
        "rounds": len(outcomes),
        "rounds_where_one_was_refused": len(overlapped),
        "refusal": overlapped[0]["refusal"] if overlapped else None,
        "winner_seconds": overlapped[0]["winner_s"] if overlapped else None,
        "loser_seconds": overlapped[0]["loser_s"] if overlapped else None,
        "outcomes": outcomes,
        "passed": passed,
    }


@dataclass(frozen=True)
class _Run:
    """One `crm land` process: its seed, exit code, wall time and last line on stderr."""

    seed: int
    code: int
    seconds: float
    stderr: str


def _land_twice(
    lake: Lake, env: dict[str, str], workdir: Path, opportunities: int, seeds: tuple[int, int]
) -> dict[str, Any]:
    processes = []
    for n, seed in enumerate(seeds):
        process_env = {**env, "PREFECT_HOME": str(workdir / f"prefect-{n}")}
        command = [
            str(BIN / "crm"),
            "land",
            "--source",
            "synthetic",
            "--snapshot",
            SNAPSHOT,
            "--opportunities",
            str(opportunities),
            "--seed",
            str(seed),
            "--json",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(  # nosec B603  # our own CLI, fixed arguments, no shell
            command, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        processes.append((seed, started, process))
    results = []
    for seed, started, process in processes:
        _, err = process.communicate(timeout=900)
        last_line = err.strip().splitlines()[-1] if err.strip() else ""
        results.append(_Run(seed, process.returncode, time.perf_counter() - started, last_line))
    won = [r for r in results if r.code == 0]
    lost = [r for r in results if r.code != 0]
    refusals = [r for r in lost if "is being written by" in r.stderr]
    failures = [r.stderr for r in lost if r not in refusals]
    if not won:
        return {"won": 0, "refused": len(refusals), "errors": failures, "consistent": False}
    manifest = lake.read_manifest(raw_manifest_key(SNAPSHOT))
    committed = landing.read_snapshot(lake, SNAPSHOT)
    # Nothing mixed, nothing lost: the snapshot is exactly one winner's data, every table.
    whole_of = [
        r.seed
        for r in won
        if all(
            committed[name].equals(table)
            for name, table in generate(opportunities, seed=r.seed).tables.items()
        )
    ]
    left = _leftovers(lake, raw_manifest_key(SNAPSHOT))
    consistent = (
        len(whole_of) == 1
        and len(lost) == len(refusals)
        and not left["lease_left"]
        and not left["missing_objects"]
        and left["max_versions_per_object"] <= GENERATIONS
        and all(raw_key(name, SNAPSHOT) in manifest.objects for name in TABLES)
    )
    return {
        "won": len(won),
        "refused": len(refusals),
        "errors": failures,
        "refusal": refusals[0].stderr if refusals else None,
        "winner_s": round(won[0].seconds, 2) if won else None,
        "loser_s": round(lost[0].seconds, 2) if lost else None,
        "committed_data_of_seed": whole_of[0] if len(whole_of) == 1 else None,
        "consistent": consistent,
        **left,
    }


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "data_s3_killed_mid_land": s3_killed_mid_land,
    "data_s3_killed_mid_feature_write": s3_killed_mid_feature_write,
    "data_concurrent_land": concurrent_land,
}
