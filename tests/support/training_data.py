"""Training examples from the project's one generator, without a feature store.

The rows `training.examples.build_examples` gets through Feast, built in memory instead: the
generator's tables -> `validation.run.validate_tables` -> `feature_tables.compute` (every view's
own point-in-time rows) -> `training.examples.entity_frame`, joined the way Feast's offline store
joins them (per view, the latest row at or before the example's `event_timestamp`, no older than
the view's ttl), plus the on-demand request features and the generator's true win probability.
Columns carry Feast's full feature names (`view__feature`) of the scoring service.
`tests/model/test_model_generator_e2e.py` checks that this frame equals the one Feast returns.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from feature_repo.definitions import FEATURE_VIEWS
from feature_repo.entities import OPPORTUNITY_ID
from feature_repo.feature_services import full_name, opportunity_scoring_v1
from feature_repo.on_demand import opportunity_request_features
from feature_tables.compute import (
    PAIR_STATS_VIEWS,
    PROFILE_VIEWS,
    STATS_VIEWS,
    compute_feature_tables,
)
from infra.settings import Settings
from ingestion.synthetic import LAST_DAY, generate
from ingestion.tables import ACCOUNTS, SALES_PIPELINE
from training.examples import STEP_DAYS, attach_truth, entity_frame
from training.features import LABEL, TIMESTAMP
from training.split import time_split
from validation.run import validate_tables

# Join keys of each view the scoring service reads from a feature table.
VIEW_KEYS: dict[str, tuple[str, ...]] = {
    **{view: (key,) for view, key in {**STATS_VIEWS, **PROFILE_VIEWS}.items()},
    **PAIR_STATS_VIEWS,
}
VIEW_TTL = {view.name: view.ttl for view in FEATURE_VIEWS}
DEFAULT_QUALITY_THRESHOLD: float = Settings.model_fields["quality_threshold"].default
# The generator's last day: what `build_feature_tables` runs the daily rows up to for its snapshots.
AS_OF_END: date = LAST_DAY.item()


def generator_examples(
    opportunities: int, seed: int, *, step_days: int | None = STEP_DAYS, signal: float = 1.0
) -> pd.DataFrame:
    """Examples of `ingestion.synthetic.generate(opportunities, seed, signal=signal)`, as Feast
    would give them."""
    source = generate(opportunities, seed=seed, signal=signal)
    outcome = validate_tables(source.tables, threshold=DEFAULT_QUALITY_THRESHOLD)
    assert outcome.passed, [f.to_dict() for f in outcome.findings if f.blocking]
    validated = outcome.validated
    tables = compute_feature_tables(validated, as_of_end=AS_OF_END)
    entities = entity_frame(
        validated[SALES_PIPELINE].to_pandas(), validated[ACCOUNTS].to_pandas(), step_days=step_days
    )
    frame = point_in_time_features(entities, tables)
    assert source.ground_truth is not None
    frame = attach_truth(frame, source.ground_truth.to_pandas())
    return frame.sort_values([TIMESTAMP, OPPORTUNITY_ID], ignore_index=True)


def point_in_time_features(entities: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The scoring service's features of each entity row, joined as of its `event_timestamp`."""
    frame = entities.reset_index(drop=True)
    frame["_row"] = range(len(frame))
    for projection in opportunity_scoring_v1.feature_view_projections:
        view = projection.name
        if view == opportunity_request_features.name:
            continue  # computed last, from the request and the product's price
        keys, names = list(VIEW_KEYS[view]), [f.name for f in projection.features]
        rows = tables[view][[*keys, TIMESTAMP, *names]].rename(
            columns={TIMESTAMP: "_feature_ts", **{n: full_name(view, n) for n in names}}
        )
        rows["_feature_ts"] = rows["_feature_ts"].astype(frame[TIMESTAMP].dtype)
        ttl = VIEW_TTL[view]
        joined = pd.merge_asof(
            frame.sort_values(TIMESTAMP),
            rows.sort_values("_feature_ts"),
            left_on=TIMESTAMP,
            right_on="_feature_ts",
            by=keys,
            direction="backward",
            tolerance=ttl if ttl else None,
        )
        frame = joined.drop(columns="_feature_ts").sort_values("_row", ignore_index=True)
    request = opportunity_request_features.feature_transformation.transform(
        pd.DataFrame(
            {
                "engage_date": frame["engage_date"],
                "request_timestamp": frame["request_timestamp"],
                "sales_price": frame[full_name("product_profile", "sales_price")],
            }
        )
    )
    for name in request.columns:
        frame[full_name(opportunity_request_features.name, name)] = request[name].to_numpy()
    return frame.drop(columns="_row")


def scrambled_history(examples: pd.DataFrame, share: float = 1.0) -> pd.DataFrame:
    """Same test window, but the labels of `share` of the training/validation deals permuted
    among them: a worse model, honestly (share 1: nothing left to learn)."""
    test_start = time_split(examples).test_start
    first = examples.groupby(OPPORTUNITY_ID)[TIMESTAMP].transform("min")
    history = first < test_start
    per_deal = examples[history].groupby(OPPORTUNITY_ID)[LABEL].first()
    rng = np.random.default_rng(1)
    picked = rng.random(len(per_deal)) < share
    labels = per_deal.to_numpy().copy()
    labels[picked] = rng.permutation(labels[picked])
    permuted = pd.Series(labels, per_deal.index)
    out = examples.copy()
    out.loc[history, LABEL] = out.loc[history, OPPORTUNITY_ID].map(permuted).to_numpy()
    return out
