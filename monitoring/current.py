"""Today's rows: the open deals of a snapshot with the features they are scored with.

The same rows, time and feature service as batch scoring (`serving.batch`): every open deal
of the snapshot, read point in time from that snapshot's own feature build at its scoring time.
Drift is judged on what the model is actually asked about, not on the training examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from feature_tables.published import feature_build
from infra.lake import Lake
from infra.settings import Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE
from training.examples import open_deal_features

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class OpenDeals:
    snapshot: str
    at: datetime  # when they are scored
    frame: pd.DataFrame  # entity columns and every feature of the scoring service


def open_deals(
    settings: Settings, snapshot: str | None = None, *, store: FeatureStore | None = None
) -> OpenDeals:
    """The open deals of `snapshot` (default: the current feature build's) and their features."""
    from feature_tables.store import feature_store
    from validation.published import read_validated

    lake = Lake.from_settings(settings)
    build = feature_build(lake, snapshot)  # NoFeatureTablesError: says what to run
    snapshot = str(build["snapshot"])
    tables = read_validated(lake, snapshot)
    frame, at = open_deal_features(
        store or feature_store(settings, snapshot),
        tables[SALES_PIPELINE].to_pandas(),
        tables[ACCOUNTS].to_pandas(),
        build,
    )
    return OpenDeals(snapshot, at, frame)
