"""The reference a scorer is checked against: Feast's own `get_online_features`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from feature_repo.entities import DEAL_KEYS, OPPORTUNITY_ID
from feature_repo.feature_services import SCORING_SERVICE
from feature_repo.features.opportunity import opportunity_fv
from feature_tables.store import online_entity_rows

if TYPE_CHECKING:
    from feast import FeatureStore

OPPORTUNITY_FEATURES = [f"{opportunity_fv.name}:{f}" for f in (*DEAL_KEYS, "engage_date")]


def online_service_frame(
    store: FeatureStore, opportunity_ids: list[str], request_ts: list[datetime]
) -> pd.DataFrame:
    """The scoring service's online features for these deals, as Feast itself reads them."""
    opp = store.get_online_features(
        features=OPPORTUNITY_FEATURES,
        entity_rows=[{OPPORTUNITY_ID: i} for i in opportunity_ids],
    ).to_dict()
    rows = [
        {k: opp[k][n] for k in DEAL_KEYS}  # null keys -> MISSING_ENTITY: Feast returns nulls
        | {"engage_date": opp["engage_date"][n], "request_timestamp": request_ts[n]}
        for n in range(len(opportunity_ids))
    ]
    return store.get_online_features(
        features=store.get_feature_service(SCORING_SERVICE),
        entity_rows=online_entity_rows(rows),
        full_feature_names=True,
    ).to_df()
