"""Every Feast object of the repo, as one list, with its file sources on a given lake.

This is how Python code gets the definitions (`feature_tables.store` applies them, tests build
stores from them): a function of the lake, so nothing depends on which profile was active when
a module was first imported. The `feast` CLI gets the same objects through `feature_repo/repo.py`.

The feature tables are published as one set under the features manifest
(`infra.layout.FEATURES_MANIFEST_KEY`), each view under a versioned physical name; a source
points at the physical object the *committed* manifest names, never at a name a later build
could half-overwrite. So the definitions need feature tables to exist, and are applied again
after every build (the `features` flow does), before the build after next removes the objects
the registry still points at.
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
from infra.layout import FEATURES_MANIFEST_KEY

# Every view: those the scoring service serves, and the opportunity view (its stage would leak
# the outcome, so no service serves it; the scorer reads it for the deal's keys and stage).
FEATURE_VIEWS: tuple[FeatureView, ...] = (*SCORING_VIEWS, opportunity_fv)
VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in FEATURE_VIEWS)


class NoFeatureTablesError(CRMError):
    """The lake has no committed feature tables (or lacks a view): `crm features` builds them."""


def committed_feature_objects(lake: Lake) -> dict[str, str]:
    """View name -> lake key of its Parquet object, for every view the committed features
    manifest lists (`NoFeatureTablesError` if no build was ever committed)."""
    if not lake.exists(FEATURES_MANIFEST_KEY):
        raise NoFeatureTablesError(
            f"No feature tables in {lake.where} (no {FEATURES_MANIFEST_KEY}): run `crm features`."
        )
    objects = lake.read_manifest(FEATURES_MANIFEST_KEY).objects
    return {PurePosixPath(logical).parent.name: key for logical, key in objects.items()}


def feature_objects(lake: Lake) -> dict[str, str]:
    """View name -> lake key of its Parquet object for every view of the repo."""
    committed = committed_feature_objects(lake)
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


def definitions(lake: Lake, s3_endpoint: str | None = None) -> list[Any]:
    """Entities, feature views on the committed feature tables of `lake`, the on-demand view and
    the feature services (`NoFeatureTablesError` if `crm features` has not run)."""
    physical = feature_objects(lake)
    return [
        *ENTITIES,
        *(on_lake(view, lake, s3_endpoint, physical[view.name]) for view in FEATURE_VIEWS),
        opportunity_request_features,
        opportunity_scoring_v1,
    ]
