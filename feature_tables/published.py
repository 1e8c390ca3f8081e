"""Read side of the feature tables: a committed build (the current one by default), through its
snapshot's features manifest."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from feature_repo.definitions import (
    NoFeatureTablesError,
    committed_feature_objects,
    current_feature_snapshot,
)
from infra.lake import Lake
from infra.layout import features_manifest_key


def read_feature_table(lake: Lake, view: str, snapshot: str | None = None) -> pa.Table:
    """The rows of `view` in `snapshot`'s build (default: the current one)."""
    objects = committed_feature_objects(lake, snapshot)
    if view not in objects:
        raise NoFeatureTablesError(
            f"The feature tables in {lake.where} have no view {view!r} (they have "
            f"{', '.join(sorted(objects)) or 'none'}): run `crm features`."
        )
    return lake.read_parquet(objects[view])


def feature_build(lake: Lake, snapshot: str | None = None) -> dict[str, Any]:
    """A committed build's metadata (snapshot, rows per view, when it was built, its `txid`);
    the current build's by default (`NoFeatureTablesError` with what to run if none)."""
    snapshot = snapshot or current_feature_snapshot(lake)
    committed_feature_objects(lake, snapshot)  # the clear error when it was not built
    manifest = lake.read_manifest(features_manifest_key(snapshot))
    return {**manifest.metadata, "txid": manifest.txid}
