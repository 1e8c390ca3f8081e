"""Entity rows of closed deals: engagement plus every step while open, never at/after close."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from training.errors import ExamplesError
from training.examples import entity_frame, sample_opportunities


def _pipeline() -> pd.DataFrame:
    rows = [
        ("A1", "Won", date(2017, 1, 1), date(2017, 3, 5), 100),
        ("A2", "Lost", date(2017, 2, 1), date(2017, 3, 3), 0),
        ("A3", "Won", date(2017, 4, 1), date(2017, 4, 1), 50),  # closed the day it engaged
        ("A4", "Engaging", date(2017, 5, 1), None, None),
        ("A5", "Prospecting", None, None, None),
    ]
    frame = pd.DataFrame(
        rows, columns=["opportunity_id", "deal_stage", "engage_date", "close_date", "close_value"]
    )
    frame["sales_agent"], frame["account"], frame["product"] = "Ag", "Acc", "GTX Basic"
    return frame


def test_as_of_rows_every_step_strictly_before_close() -> None:
    entities = entity_frame(_pipeline(), step_days=30)
    by_id = entities.groupby("opportunity_id")["event_timestamp"].apply(
        lambda s: [t.date().isoformat() for t in s]
    )
    assert by_id.to_dict() == {
        "A1": ["2017-01-01", "2017-01-31", "2017-03-02"],
        "A2": ["2017-02-01", "2017-03-03"][:1],
    }
    assert entities.set_index("opportunity_id")["label"].groupby(level=0).first().to_dict() == {
        "A1": 1,
        "A2": 0,
    }
    assert (entities["event_timestamp"] < entities["label_timestamp"]).all()
    assert str(entities["event_timestamp"].dt.tz) == "UTC"
    assert (entities["request_timestamp"] == entities["event_timestamp"]).all()
    assert "close_value" not in entities and "close_date" not in entities


def test_engagement_only() -> None:
    entities = entity_frame(_pipeline(), step_days=None)
    assert list(entities["opportunity_id"]) == ["A1", "A2"]
    assert (entities["event_timestamp"] == entities["engage_date"]).all()


def test_rows_carry_the_account_sector_for_the_pair_stats() -> None:
    pipeline = _pipeline()
    pipeline.loc[pipeline.opportunity_id == "A2", "account"] = "Other"
    accounts = pd.DataFrame({"account": ["Acc", "Other"], "sector": ["retail", "medical"]})
    entities = entity_frame(pipeline, accounts, step_days=30)
    assert entities.groupby("opportunity_id")["sector"].unique().map(list).to_dict() == {
        "A1": ["retail"],
        "A2": ["medical"],
    }
    assert "sector" not in entity_frame(pipeline, step_days=30)  # only when accounts are given


def test_no_closed_deal_is_a_clear_error() -> None:
    open_only = _pipeline().query("deal_stage in ['Engaging', 'Prospecting']")
    with pytest.raises(ExamplesError, match="no closed deal"):
        entity_frame(open_only)


def _examples(deals: int, per_deal: int) -> pd.DataFrame:
    ids = [f"D{i:05d}" for i in range(deals) for _ in range(per_deal)]
    return pd.DataFrame({"opportunity_id": ids, "step": list(range(per_deal)) * deals})


def test_sampling_keeps_whole_opportunities_near_the_cap() -> None:
    frame = _examples(deals=5_000, per_deal=3)
    sampled = sample_opportunities(frame, max_examples=3_000, seed=1)
    assert len(sampled) == 3_000  # 1,000 deals of 3 examples each
    assert (sampled.groupby("opportunity_id").size() == 3).all()  # no deal cut in part
    again = sample_opportunities(frame, max_examples=3_000, seed=1)
    pd.testing.assert_frame_equal(sampled, again)  # seeded
    other = sample_opportunities(frame, max_examples=3_000, seed=2)
    assert set(other.opportunity_id) != set(sampled.opportunity_id)


def test_sampling_leaves_a_small_frame_alone() -> None:
    frame = _examples(deals=100, per_deal=2)
    assert sample_opportunities(frame, max_examples=200, seed=1) is frame
