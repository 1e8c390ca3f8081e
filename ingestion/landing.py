"""Landing: a source's four tables become one committed raw snapshot in the lake.

The four Parquet files are published together under one manifest (`raw/_manifests/...`), the
snapshot's commit point: a reader sees all four tables of a snapshot or none, and landing the same
snapshot again replaces it (older objects are removed after the new manifest is written), so
rows are never duplicated. The synthetic ground truth is kept apart from the raw tables, under
`ground_truth/`, where no feature pipeline reads.

One writer per snapshot: a landing holds the snapshot's lease (`Lake.lease`) while it publishes
the tables and writes the ground truth, so two landings of one snapshot (a scheduled run and a
manual one) cannot mix; the second fails at once with a message naming the first.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.progress import Progress

from infra.lake import Lake
from infra.layout import (
    RAW,
    ground_truth_key,
    manifests_prefix,
    publish_lease_name,
    raw_key,
    raw_manifest_key,
)
from ingestion.errors import LandingError
from ingestion.source_data import SourceData
from ingestion.tables import SCHEMAS, TABLES, ignored_columns

SNAPSHOT_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PACKAGE = "crm-feature-platform"


@dataclass(frozen=True)
class LandingResult:
    snapshot: str
    source: str
    manifest_key: str
    rows: dict[str, int]
    objects: dict[str, str]  # logical key -> physical key
    ground_truth_key: str | None
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "source": self.source,
            "rows": dict(self.rows),
            "manifest_key": self.manifest_key,
            "ground_truth_key": self.ground_truth_key,
            "seconds": round(self.seconds, 3),
        }


def check_snapshot(snapshot: str) -> str:
    """`snapshot` if it is a real `YYYY-MM-DD` date, else a `LandingError` saying so."""
    try:
        if SNAPSHOT_PATTERN.match(snapshot):
            date.fromisoformat(snapshot)
            return snapshot
    except ValueError:
        pass
    raise LandingError(
        f"Snapshot {snapshot!r} is not a date YYYY-MM-DD (e.g. 2017-12-31): pass "
        "`--snapshot YYYY-MM-DD`, or leave it out for today's date (UTC)."
    )


def code_version() -> str:
    """Short git commit of the working tree, else the installed package version."""
    try:
        out = subprocess.run(  # nosec B603 B607  # fixed `git rev-parse`; git found on PATH
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def land(
    lake: Lake, data: SourceData, snapshot: str, *, code_version: str, progress: bool = False
) -> LandingResult:
    """Publish the four tables as raw snapshot `snapshot` (replacing it if it exists)."""
    started = time.perf_counter()
    check_snapshot(snapshot)
    _check_tables(data)
    objects = {raw_key(name, snapshot): data.tables[name] for name in TABLES}
    truth_key = ground_truth_key(snapshot) if data.ground_truth is not None else None
    rows = {name: data.tables[name].num_rows for name in TABLES}
    metadata_: dict[str, Any] = {
        "source": data.source,
        "checksums": dict(data.checksums),
        "rows": rows,
        "schemas": {
            name: data.tables[name].schema.to_string(show_schema_metadata=False) for name in TABLES
        },
        # Columns the source had beyond the schema: not landed (validation warns about them).
        "ignored_columns": {
            name: ignored_columns(data.tables[name])
            for name in TABLES
            if ignored_columns(data.tables[name])
        },
        "code_version": code_version,
        "snapshot": snapshot,
        "landed_at": datetime.now(UTC).isoformat(),
        "ground_truth": truth_key,
    }
    manifest_key = raw_manifest_key(snapshot)
    # The tables and the ground truth under one lease: no other landing of this snapshot between.
    with lake.lease(publish_lease_name(manifest_key)):
        if progress:
            with Progress(transient=True) as bar:
                task = bar.add_task(f"Landing snapshot {snapshot}", total=len(objects))
                manifest = lake.publish(
                    manifest_key, objects, metadata_, on_object=lambda _: bar.advance(task)
                )
        else:
            manifest = lake.publish(manifest_key, objects, metadata_)
        # The ground truth follows the snapshot it belongs to: replaced, or removed if none.
        if data.ground_truth is not None and truth_key:
            lake.write_parquet(truth_key, data.ground_truth)
        else:
            lake.delete(ground_truth_key(snapshot))
    return LandingResult(
        snapshot=snapshot,
        source=data.source,
        manifest_key=manifest_key,
        rows=rows,
        objects=dict(manifest.objects),
        ground_truth_key=truth_key,
        seconds=time.perf_counter() - started,
    )


def list_snapshots(lake: Lake) -> list[str]:
    """Committed raw snapshots (those with a manifest), oldest first."""
    candidates = lake.list_partitions(manifests_prefix(RAW), "snapshot")
    return [s for s in candidates if lake.exists(raw_manifest_key(s))]


def read_snapshot(lake: Lake, snapshot: str) -> dict[str, pa.Table]:
    """The four tables of a committed snapshot, read through its manifest."""
    manifest_key = _require_snapshot(lake, snapshot)
    manifest = lake.read_manifest(manifest_key)
    return {name: lake.read_parquet(manifest.objects[raw_key(name, snapshot)]) for name in TABLES}


def read_manifest_metadata(lake: Lake, snapshot: str) -> dict[str, Any]:
    """The `_manifest.json` metadata of a landed snapshot (source, checksums, rows, schemas)."""
    return dict(lake.read_manifest(_require_snapshot(lake, snapshot)).metadata)


def read_ground_truth(lake: Lake, snapshot: str) -> pa.Table:
    """True win probabilities of a synthetic snapshot (for evaluation, never for features)."""
    _require_snapshot(lake, snapshot)
    key = ground_truth_key(snapshot)
    if not lake.exists(key):
        source = read_manifest_metadata(lake, snapshot).get("source", "?")
        raise LandingError(
            f"Snapshot {snapshot} has no ground truth: it was landed from {source}, and only "
            "`--source synthetic` knows the true win probabilities. Land a synthetic snapshot "
            "with `crm land --source synthetic`."
        )
    return lake.read_parquet(key)


def _require_snapshot(lake: Lake, snapshot: str) -> str:
    check_snapshot(snapshot)
    manifest_key = raw_manifest_key(snapshot)
    if not lake.exists(manifest_key):
        landed = ", ".join(list_snapshots(lake)) or "none"
        raise LandingError(
            f"No landed snapshot {snapshot} in {lake.uri('raw')} (landed: {landed}): "
            f"run `crm land --snapshot {snapshot}` first."
        )
    return manifest_key


def _check_tables(data: SourceData) -> None:
    missing = [name for name in TABLES if name not in data.tables]
    if missing:
        raise LandingError(f"Source {data.source} lacks table(s) {', '.join(missing)}.")
    for name in TABLES:
        schema = data.tables[name].schema
        if not schema.equals(SCHEMAS[name]):
            raise LandingError(
                f"Table {name} from {data.source} does not have the landing schema: got "
                f"{schema.to_string()!r}, expected {SCHEMAS[name].to_string()!r}. "
                "Sources must convert to ingestion.tables.SCHEMAS."
            )
