"""Two consecutive days through the chain's steps, incrementally, equal a full rebuild of day 2.

Day 1 (2017-11-30) and day 2 (2017-12-31) are one synthetic history as the CRM showed it on
each day: by day 2 some open deals closed, new deals arrived and the daily stats moved on. After
day 1 is materialised, day 2 is built and materialised incrementally (only rows newer than what
was loaded); every online value of every view must equal a profile where day 2 alone was built
and materialised from scratch.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from feature_tables.build import build_feature_tables
from feature_tables.published import read_feature_table
from feature_tables.store import apply, feature_store, materialize
from infra.lake import Lake
from infra.settings import Settings
from ingestion.landing import land
from ingestion.source_data import SourceData
from ingestion.synthetic import as_of, generate
from tests.support.profiles import local_profile_env
from validation.run import validate_snapshot

DAY1, DAY2 = "2017-11-30", "2017-12-31"


def run_day(settings: Settings, history: SourceData, day: str) -> dict[str, int]:
    """land → validate → features → materialise, as `crm-daily` does (without the scoring)."""
    lake = Lake.from_settings(settings)
    land(lake, as_of(history, date.fromisoformat(day)), day, code_version="test")
    assert validate_snapshot(lake, day, threshold=settings.quality_threshold).passed
    build_feature_tables(lake, day)
    store = feature_store(settings)
    apply(store, settings)
    return materialize(store)


def online_values(settings: Settings) -> dict[str, Any]:
    """Every view's online values for every entity of the current build, in a stable order."""
    lake = Lake.from_settings(settings)
    store = feature_store(settings)
    values = {}
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        keys = [c.name for c in view.entity_columns]
        table = read_feature_table(lake, view.name).to_pandas()
        entities = table[keys].dropna().drop_duplicates().sort_values(keys)
        rows = entities.to_dict("records")
        features = [f"{view.name}:{f.name}" for f in view.features]
        values[view.name] = store.get_online_features(features=features, entity_rows=rows).to_dict()
    return values


@pytest.fixture(scope="module")
def history() -> SourceData:
    return generate(2500, seed=11)


def test_day_two_incrementally_equals_a_full_rebuild(
    history: SourceData, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with local_profile_env(tmp_path_factory.mktemp("incremental") / ".crm") as settings:
        run_day(settings, history, DAY1)
        loaded = run_day(settings, history, DAY2)
        incremental = online_values(settings)
    with local_profile_env(tmp_path_factory.mktemp("rebuilt") / ".crm") as settings:
        run_day(settings, history, DAY2)
        rebuilt = online_values(settings)

    assert loaded["opportunity"] > 0  # day 2 brought closures and new deals
    assert incremental.keys() == rebuilt.keys()
    for view in rebuilt:
        assert incremental[view] == rebuilt[view], view


def test_a_closed_deal_is_served_closed_and_a_new_one_is_there(
    history: SourceData, tmp_path: Path
) -> None:
    with local_profile_env(tmp_path / ".crm") as settings:
        run_day(settings, history, DAY1)
        lake = Lake.from_settings(settings)
        day1 = read_feature_table(lake, "opportunity").to_pandas()
        run_day(settings, history, DAY2)
        day2 = read_feature_table(lake, "opportunity").to_pandas()
        last = day2.sort_values("event_timestamp").groupby("opportunity_id")["deal_stage"].last()
        was_open = set(day1.loc[day1["deal_stage"] == "Engaging", "opportunity_id"])
        closed = sorted(i for i in was_open if last[i] in ("Won", "Lost"))[:10]
        new = sorted(set(day2["opportunity_id"]) - set(day1["opportunity_id"]))[:10]
        assert len(closed) == 10 and len(new) == 10
        online = (
            feature_store(settings)
            .get_online_features(
                features=["opportunity:deal_stage"],
                entity_rows=[{"opportunity_id": i} for i in closed + new],
            )
            .to_dict()["deal_stage"]
        )
    assert online[:10] == [last[i] for i in closed]
    assert online[10:] == [last[i] for i in new]
