"""Read side of validation: which snapshots passed, and their validated tables."""

from __future__ import annotations

import pyarrow as pa

from infra.lake import Lake
from infra.layout import VALIDATED, manifests_prefix, validated_key, validated_manifest_key
from ingestion.tables import TABLES
from validation.errors import NotValidatedError


def validated_snapshots(lake: Lake) -> list[str]:
    """Snapshots with a committed validated manifest, oldest first."""
    return [
        s
        for s in lake.list_partitions(manifests_prefix(VALIDATED), "snapshot")
        if lake.exists(validated_manifest_key(s))
    ]


def latest_validated_snapshot(lake: Lake) -> str:
    snapshots = validated_snapshots(lake)
    if not snapshots:
        raise NotValidatedError(
            f"No validated snapshot in {lake.where}: run `crm land` then `crm validate`."
        )
    return snapshots[-1]


def read_validated(lake: Lake, snapshot: str) -> dict[str, pa.Table]:
    """The four validated tables of `snapshot`, all from the same publish."""
    manifest_key = validated_manifest_key(snapshot)
    if not lake.exists(manifest_key):
        raise NotValidatedError(
            f"Snapshot {snapshot} has no validated data in {lake.where}: run "
            f"`crm validate --snapshot {snapshot}` (it is published only if it passes the gate; "
            f"see reports/validation/snapshot={snapshot}/report.html)."
        )
    manifest = lake.read_manifest(manifest_key)
    return {
        name: lake.read_parquet(manifest.objects[validated_key(name, snapshot)]) for name in TABLES
    }
