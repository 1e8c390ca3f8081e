"""Read side of the feature tables: the committed build, through the features manifest."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from feature_repo.definitions import NoFeatureTablesError, committed_feature_objects
from infra.lake import Lake
from infra.layout import FEATURES_MANIFEST_KEY


def read_feature_table(lake: Lake, view: str) -> pa.Table:
    """The rows of `view` in the committed feature build (`NoFeatureTablesError` if none)."""
    objects = committed_feature_objects(lake)
    if view not in objects:
        raise NoFeatureTablesError(
            f"The feature tables in {lake.where} have no view {view!r} (they have "
            f"{', '.join(sorted(objects)) or 'none'}): run `crm features`."
        )
    return lake.read_parquet(objects[view])


def feature_build(lake: Lake) -> dict[str, Any]:
    """The committed build's metadata: snapshot, rows per view, when it was built."""
    committed_feature_objects(lake)  # the clear error when nothing is built
    return dict(lake.read_manifest(FEATURES_MANIFEST_KEY).metadata)
