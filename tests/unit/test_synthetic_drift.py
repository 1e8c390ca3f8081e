"""The generator's drift knob: deals engaged before the drift's start are exactly those of the
undrifted history; later ones change the product mix, a sector's win rate and the agent mix."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ingestion.drift import (
    DRIFTED_SECTOR,
    LEAVING_MANAGER,
    PRODUCT_MIX,
    TEAM_LEAVES,
    Drift,
    DriftSpecError,
)
from ingestion.errors import SourceError
from ingestion.sources import check_source, load_source
from ingestion.synthetic import as_of, generate
from ingestion.tables import ACCOUNTS, SALES_PIPELINE, SALES_TEAMS

pytestmark = pytest.mark.unit

START = date(2017, 7, 1)
N = 20_000


@pytest.fixture(scope="module")
def worlds() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    plain = generate(N, seed=3)
    drifted = generate(N, seed=3, drift=Drift(START))
    accounts = plain.tables[ACCOUNTS].to_pandas()[["account", "sector"]]

    def deals(data) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        frame = data.tables[SALES_PIPELINE].to_pandas().merge(accounts, on="account", how="left")
        truth = data.ground_truth.to_pandas()[["opportunity_id", "win_probability"]]
        return frame.merge(truth, on="opportunity_id")

    teams = plain.tables[SALES_TEAMS].to_pandas()
    return deals(plain), deals(drifted), teams


def test_history_before_the_start_is_the_undrifted_one() -> None:
    plain, drifted = generate(3000, seed=5), generate(3000, seed=5, drift=Drift(START))
    day = date(2017, 6, 30)
    before, after = as_of(plain, day), as_of(drifted, day)
    for name in (SALES_PIPELINE, ACCOUNTS):
        assert before.tables[name].equals(after.tables[name]), name
    assert before.ground_truth is not None and after.ground_truth is not None
    assert before.ground_truth.equals(after.ground_truth)
    # ... and later deals keep their ids, dates and open/closed status (outcomes may change).
    whole_a, whole_b = plain.tables[SALES_PIPELINE], drifted.tables[SALES_PIPELINE]
    for column in ("opportunity_id", "engage_date", "close_date"):
        assert whole_a[column].equals(whole_b[column]), column
    open_a, open_b = (
        t["deal_stage"].to_pandas().isin(["Engaging", "Prospecting"]) for t in (whole_a, whole_b)
    )
    assert open_a.equals(open_b)


def test_the_product_mix_moves_after_the_start(worlds) -> None:  # type: ignore[no-untyped-def]
    plain, drifted, _ = worlds
    late = lambda f: f[f["engage_date"] >= START]  # noqa: E731
    share_plain = (late(plain)["product"] == "GTK 500").mean()
    share_drifted = (late(drifted)["product"] == "GTK 500").mean()
    assert share_plain < 0.01 < 0.05 < share_drifted


def test_the_sector_wins_less_after_the_start(worlds) -> None:  # type: ignore[no-untyped-def]
    plain, drifted, _ = worlds

    def win_rate(frame: pd.DataFrame) -> float:
        closed = frame[
            (frame["engage_date"] >= START)
            & (frame["sector"] == DRIFTED_SECTOR)
            & frame["deal_stage"].isin(["Won", "Lost"])
        ]
        return float((closed["deal_stage"] == "Won").mean())

    assert win_rate(drifted) < win_rate(plain) - 0.15
    retail = (drifted["engage_date"] >= START) & (drifted["sector"] == DRIFTED_SECTOR)
    other = (drifted["engage_date"] >= START) & (drifted["sector"] != DRIFTED_SECTOR)
    assert (
        drifted.loc[retail, "win_probability"].mean() < plain.loc[retail, "win_probability"].mean()
    )
    # the other sectors' true probabilities are the undrifted ones but for product/agent changes
    assert other.sum() > 0


def test_the_leaving_team_takes_no_new_deals(worlds) -> None:  # type: ignore[no-untyped-def]
    plain, drifted, teams = worlds
    team = set(teams.loc[teams["manager"] == LEAVING_MANAGER, "sales_agent"])
    new_plain = plain[plain["engage_date"] >= START]
    new_drifted = drifted[drifted["engage_date"] >= START]
    assert new_plain["sales_agent"].isin(team).sum() > 100
    assert new_drifted["sales_agent"].isin(team).sum() == 0
    old = drifted[drifted["engage_date"] < START]
    assert old["sales_agent"].isin(team).sum() > 0


def test_only_the_named_kinds_drift() -> None:
    only = generate(5000, seed=2, drift=Drift.parse(f"{START}/{TEAM_LEAVES}"))
    plain = generate(5000, seed=2)
    a, b = (d.tables[SALES_PIPELINE].to_pandas() for d in (plain, only))
    late = a["engage_date"] >= START
    assert (a.loc[late, "product"] == b.loc[late, "product"]).all()
    assert (a.loc[late, "sales_agent"] != b.loc[late, "sales_agent"]).any()
    assert only.source == f"synthetic:drift={START}/{TEAM_LEAVES}"
    assert only.checksums["parameters.json"] != plain.checksums["parameters.json"]


def test_a_source_spec_plants_a_drift() -> None:
    data = load_source(f"synthetic:drift={START}/{PRODUCT_MIX}", opportunities=2000, seed=4)
    assert data.source == f"synthetic:drift={START}/{PRODUCT_MIX}"
    assert Drift.parse(f"{START}") == Drift(START)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("synthetic:drift=soon", "is not a date"),
        ("synthetic:drift=2017-07-01/weather", "unknown drift kind weather"),
    ],
)
def test_a_bad_drift_spec_is_one_line(spec: str, says: str) -> None:
    with pytest.raises(SourceError, match=says) as error:
        check_source(spec)
    assert "\n" not in str(error.value)
    with pytest.raises(DriftSpecError):
        Drift.parse(spec.split("=", 1)[1])
