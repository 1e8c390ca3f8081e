"""Every Feast object of the repo, as one list, with its file sources on a given lake.

This is how Python code gets the definitions (`feature_tables.store` applies them, tests build
stores from them): a function of the lake, so nothing depends on which profile was active when
a module was first imported. The `feast` CLI gets the same objects through `feature_repo/repo.py`.

The feature tables are versioned by snapshot: each snapshot's build is published as one set
under its own manifest (`infra.layout.features_manifest_key`), each view under a versioned
physical name, and `features/_current.json` names the build Feast's sources point at (the
newest snapshot built). A source points at the physical object a *committed* manifest names,
never at a name a later build could half-overwrite. So the definitions need feature tables to
exist, and are applied again after every build (the `features` flow does). Reading an older
snapshot point in time (training or scoring it) uses that snapshot's definitions in a registry
of its own (`feature_tables.store.feature_store(settings, snapshot)`).
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any

from feast import FeatureView, FileSource

from feature_repo.data_sources import lake_source
from feature_repo.entities import ENTITIES
from feature_repo.feature_services import SCORING_VIEWS, opportunity_scoring_v1
from feature_repo.features.opportunity import opportunity_fv
from feature_repo.on_demand import opportunity_request_features
from infra.errors import CRMError
from infra.lake import Lake
from infra.layout import (
    FEATURES,
    FEATURES_CURRENT_KEY,
    features_manifest_key,
    manifests_prefix,
)

# Every view: those the scoring service serves, and the opportunity view (its stage would leak
# the outcome, so no service serves it; the scorer reads it for the deal's keys and stage).
FEATURE_VIEWS: tuple[FeatureView, ...] = (*SCORING_VIEWS, opportunity_fv)
VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in FEATURE_VIEWS)


class NoFeatureTablesError(CRMError):
    """The lake has no committed feature tables (or lacks a view): `crm features` builds them."""


def current_feature_snapshot(lake: Lake) -> str:
    """The snapshot whose feature build Feast's sources point at (`NoFeatureTablesError` if no
    build was ever committed)."""
    if not lake.exists(FEATURES_CURRENT_KEY):
        raise NoFeatureTablesError(
            f"No feature tables in {lake.where} (no {FEATURES_CURRENT_KEY}): run `crm features`."
        )
    return str(lake.read_json(FEATURES_CURRENT_KEY)["snapshot"])


def feature_snapshots(lake: Lake) -> list[str]:
    """Every snapshot with a committed feature build, oldest first."""
    return lake.list_partitions(manifests_prefix(FEATURES), "snapshot")


def committed_feature_objects(lake: Lake, snapshot: str | None = None) -> dict[str, str]:
    """View name -> lake key of its Parquet object, for every view of `snapshot`'s committed
    build (default: the current one); `NoFeatureTablesError` if there is none."""
    snapshot = snapshot or current_feature_snapshot(lake)
    manifest_key = features_manifest_key(snapshot)
    if not lake.exists(manifest_key):
        raise NoFeatureTablesError(
            f"No feature tables of snapshot {snapshot} in {lake.where}: run "
            f"`crm features --snapshot {snapshot}`."
        )
    objects = lake.read_manifest(manifest_key).objects
    return {PurePosixPath(logical).parent.parent.name: key for logical, key in objects.items()}


def feature_objects(lake: Lake, snapshot: str | None = None) -> dict[str, str]:
    """View name -> lake key of its Parquet object for every view of the repo."""
    committed = committed_feature_objects(lake, snapshot)
    missing = [view for view in VIEW_NAMES if view not in committed]
    if missing:
        raise NoFeatureTablesError(
            f"The feature tables in {lake.where} lack {', '.join(missing)} (built by an older "
            "version?): run `crm features`."
        )
    return {view: committed[view] for view in VIEW_NAMES}


def on_lake(
    view: FeatureView, lake: Lake, s3_endpoint: str | None = None, key: str | None = None
) -> FeatureView:
    """A copy of `view` whose batch source reads `key` (default: its logical key) on `lake`."""
    if not isinstance(view.batch_source, FileSource):
        raise TypeError(f"{view.name} must read a lake FileSource (feature_repo/data_sources.py)")
    moved = copy.copy(view)
    source = lake_source(view.name, lake.uri(key or view.batch_source.path), s3_endpoint)
    moved.batch_source = source
    moved.data_source = source
    return moved


def definitions(
    lake: Lake, s3_endpoint: str | None = None, snapshot: str | None = None
) -> list[Any]:
    """Entities, feature views on `snapshot`'s committed feature tables of `lake` (default: the
    current build), the on-demand view and the feature services (`NoFeatureTablesError` if
    `crm features` has not built them)."""
    physical = feature_objects(lake, snapshot)
    return [
        *ENTITIES,
        *(on_lake(view, lake, s3_endpoint, physical[view.name]) for view in FEATURE_VIEWS),
        opportunity_request_features,
        opportunity_scoring_v1,
    ]
