"""Every Feast object of the repo, as one list, with its file sources on a given lake.

This is how Python code gets the definitions (`feature_tables.store` applies them, tests build
stores from them): a function of the lake, so nothing depends on which profile was active when
a module was first imported. The `feast` CLI gets the same objects through `feature_repo/repo.py`.
"""

from __future__ import annotations

import copy
from typing import Any

from feast import FeatureView, FileSource

from feature_repo.data_sources import lake_source
from feature_repo.entities import ENTITIES
from feature_repo.feature_services import SCORING_VIEWS, opportunity_scoring_v1
from feature_repo.features.opportunity import opportunity_fv
from feature_repo.on_demand import opportunity_request_features
from infra.lake import Lake

# Every view: those the scoring service serves, and the opportunity view (its stage would leak
# the outcome, so no service serves it; the scorer reads it for the deal's keys and stage).
FEATURE_VIEWS: tuple[FeatureView, ...] = (*SCORING_VIEWS, opportunity_fv)
VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in FEATURE_VIEWS)


def on_lake(view: FeatureView, lake: Lake, s3_endpoint: str | None = None) -> FeatureView:
    """A copy of `view` whose batch source reads its Parquet object on `lake`."""
    if not isinstance(view.batch_source, FileSource):
        raise TypeError(f"{view.name} must read a lake FileSource (feature_repo/data_sources.py)")
    moved = copy.copy(view)
    source = lake_source(view.name, lake.uri(view.batch_source.path), s3_endpoint)
    moved.batch_source = source
    moved.data_source = source
    return moved


def definitions(lake: Lake, s3_endpoint: str | None = None) -> list[Any]:
    """Entities, feature views on `lake`, the on-demand view and the feature services."""
    return [
        *ENTITIES,
        *(on_lake(view, lake, s3_endpoint) for view in FEATURE_VIEWS),
        opportunity_request_features,
        opportunity_scoring_v1,
    ]
