"""An embedded (local) profile, prepared by the pipeline's own plain functions.

`prepare_local_profile` runs land -> validate -> features -> feast apply + materialise -> train,
in this process, into a temporary `CRM_HOME`; the explorer's page tests and the browser test use
it. No servers: Feast on SQLite, MLflow on SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from infra.settings import Settings, get_settings
from ingestion.tables import SALES_PIPELINE

if TYPE_CHECKING:
    from feast import FeatureStore

SNAPSHOTS = ("2017-09-30", "2017-12-31")  # an earlier one first: the quality history has 2 points
BROKEN_ROWS = 3  # deals of the first snapshot with an unknown stage


@contextmanager
def local_profile_env(home: Path, **extra: str) -> Iterator[Settings]:
    """CRM_PROFILE=local with CRM_HOME=home for this process; the environment is restored after."""
    saved = dict(os.environ)
    os.environ.update({"CRM_PROFILE": "local", "CRM_HOME": str(home), **extra})
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_HOME"):  # set by an earlier prepare_process
        os.environ.pop(name, None)
    try:
        yield get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def open_store(settings: Settings, tables: Mapping[str, pd.DataFrame]) -> FeatureStore:
    """Write feature tables to the profile's lake and apply the definitions: a store to read."""
    from feature_tables.compute import write_feature_tables
    from feature_tables.store import apply, feature_store
    from infra.lake import Lake

    write_feature_tables(Lake.from_settings(settings), tables)
    store = feature_store(settings)
    apply(store, settings)
    return store


def with_unknown_stage(pipeline: pa.Table, rows: int) -> pa.Table:
    """The first `rows` deals get a stage the contract refuses (they go to quarantine)."""
    stages = pipeline.column("deal_stage").to_pylist()
    stages[:rows] = ["Negotiating"] * rows
    position = pipeline.column_names.index("deal_stage")
    return pipeline.set_column(position, "deal_stage", pa.array(stages, type=pa.string()))


def prepare_local_profile(
    settings: Settings,
    opportunities: int = 1500,
    trainings: int = 1,
    seed: int = 7,
    *,
    batch_scores: bool = True,
) -> dict[str, object]:
    """Run the pipeline's plain functions into `settings.home` (call inside local_profile_env):
    two snapshots landed and validated, the later one's features online, `trainings` models,
    and (with `batch_scores`, if a champion was promoted) the open deals batch-scored."""
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store, materialize
    from infra.lake import Lake
    from ingestion.landing import land
    from ingestion.synthetic import as_of, generate
    from training.config import TrainingConfig
    from training.run import train
    from validation.run import validate_snapshot

    lake = Lake.from_settings(settings)
    scores = {}
    history = generate(opportunities, seed=seed + 1)  # the data the latest snapshot always had
    for i, snapshot in enumerate(SNAPSHOTS):  # one history, as the CRM showed it on each day
        source = as_of(history, date.fromisoformat(snapshot))
        if i == 0:  # a few unusable rows, so the earlier snapshot has a quarantine to show
            source.tables[SALES_PIPELINE] = with_unknown_stage(
                source.tables[SALES_PIPELINE], BROKEN_ROWS
            )
        land(lake, source, snapshot, code_version="explorer-e2e")
        result = validate_snapshot(lake, snapshot, threshold=settings.quality_threshold)
        scores[snapshot] = result.score.value
    rows = build_feature_tables(lake, SNAPSHOTS[-1])
    store = feature_store(settings)
    apply(store, settings)
    materialize(store)
    reports = [
        train(settings, TrainingConfig(search_size=2, seed=seed + i)) for i in range(trainings)
    ]
    scored = None
    if batch_scores and any(r.decision and r.decision.promoted for r in reports):
        from serving.batch import score_snapshot

        scored = score_snapshot(settings)
    return {
        "validation_scores": scores,
        "feature_rows": rows,
        "trainings": reports,
        "batch_scores": scored,
    }
