"""Point-in-time correctness of the feature tables, by hand-built cases and a slow reference."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from feature_repo.features.stats import GLOBAL_PRIOR, SMOOTHING_K
from feature_tables.build import build_feature_tables, snapshot_as_of
from feature_tables.compute import PROFILE_TIMESTAMP, compute_feature_tables, write_feature_tables
from feature_tables.errors import FeatureTablesError
from feature_tables.published import feature_build, read_feature_table
from infra.lake import Lake
from infra.layout import (
    FEATURES_CURRENT_KEY,
    feature_key,
    features_manifest_key,
    validated_key,
    validated_manifest_key,
)
from infra.settings import Settings
from ingestion.synthetic import generate
from ingestion.tables import TABLES
from tests.support.feature_reference import deals_from, random_tables, reference_stats_row
from validation.run import apply_aliases

D = date


def _tables(deals: list[dict]) -> dict[str, pd.DataFrame]:
    pipeline = pd.DataFrame(
        deals,
        columns=[
            "opportunity_id",
            "sales_agent",
            "product",
            "account",
            "deal_stage",
            "engage_date",
            "close_date",
            "close_value",
        ],
    )
    return {
        "sales_pipeline": pipeline,
        "accounts": pd.DataFrame(
            {
                "account": ["Acme", "Betasoft"],
                "sector": ["tech", "retail"],
                "year_established": [1990, 2001],
                "revenue": [10.5, 2.0],
                "employees": [100, 20],
                "office_location": ["United States", "Kenya"],
                "subsidiary_of": [None, "Acme"],
            }
        ),
        "products": pd.DataFrame(
            {
                "product": ["GTX Pro", "MG Special"],
                "series": ["GTX", "MG"],
                "sales_price": [4821, 55],
            }
        ),
        "sales_teams": pd.DataFrame(
            {
                "sales_agent": ["Ann", "Bob", "Idle"],
                "manager": ["M1", "M1", "M2"],
                "regional_office": ["East", "East", "West"],
            }
        ),
    }


def _deal(oid, agent, product, account, stage, engage, close=None, value=None) -> dict:
    return {
        "opportunity_id": oid,
        "sales_agent": agent,
        "product": product,
        "account": account,
        "deal_stage": stage,
        "engage_date": engage,
        "close_date": close,
        "close_value": value,
    }


HAND_DEALS = [
    # Ann: won on 2017-01-10, lost on 2017-01-20, one still open; Bob: won on its engage day.
    _deal("A1", "Ann", "GTX Pro", "Acme", "Won", D(2017, 1, 1), D(2017, 1, 10), 5000),
    _deal("A2", "Ann", "MG Special", "Acme", "Lost", D(2017, 1, 5), D(2017, 1, 20), 0),
    _deal("A3", "Ann", "GTX Pro", None, "Engaging", D(2017, 1, 15)),
    _deal("A4", "Ann", "MG Special", None, "Prospecting", None),
    _deal("B1", "Bob", "GTX Pro", "Betasoft", "Won", D(2017, 1, 12), D(2017, 1, 12), 4800),
]


def _row(frame: pd.DataFrame, key: str, entity: str, day: date) -> pd.Series:
    ts = pd.Timestamp(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))
    hit = frame[(frame[key] == entity) & (frame["event_timestamp"] == ts)]
    assert len(hit) == 1, f"expected one row for {entity} on {day}"
    return hit.iloc[0]


def _cell(frame: pd.DataFrame, product: str, sector: str, day: date) -> pd.Series:
    ts = pd.Timestamp(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))
    hit = frame[
        (frame["product"] == product) & (frame["sector"] == sector) & (frame.event_timestamp == ts)
    ]
    assert len(hit) == 1, f"expected one row for {product} x {sector} on {day}"
    return hit.iloc[0]


@pytest.fixture(scope="module")
def hand() -> dict[str, pd.DataFrame]:
    return compute_feature_tables(_tables(HAND_DEALS), as_of_end=D(2017, 1, 31))


def test_outcome_counts_from_its_close_day_never_before(hand):
    agents = hand["sales_agent_daily_stats"]
    before = _row(agents, "sales_agent", "Ann", D(2017, 1, 9))
    on = _row(agents, "sales_agent", "Ann", D(2017, 1, 10))
    assert (before.closed_all, before.won_all, before.closed_30d) == (0, 0, 0)
    assert (on.closed_all, on.won_all, on.closed_30d, on.won_30d) == (1, 1, 1, 1)
    after_loss = _row(agents, "sales_agent", "Ann", D(2017, 1, 20))
    assert (after_loss.closed_all, after_loss.won_all) == (2, 1)
    assert before.win_rate_all == GLOBAL_PRIOR  # nothing closed anywhere yet
    # On 2017-01-10 the only closed deal is A1 (won): global rate 1.0.
    assert on.win_rate_all == pytest.approx((1 + SMOOTHING_K * 1.0) / (1 + SMOOTHING_K))
    # On 2017-01-20: global = 2 won / 3 closed; Ann 1 won / 2 closed.
    assert after_loss.win_rate_all == (1 + SMOOTHING_K * (2 / 3)) / (2 + SMOOTHING_K)


def test_same_day_close_is_invisible_at_the_start_of_that_day(hand):
    agents = hand["sales_agent_daily_stats"]
    assert _row(agents, "sales_agent", "Bob", D(2017, 1, 11)).won_all == 0
    assert _row(agents, "sales_agent", "Bob", D(2017, 1, 12)).won_all == 1
    # The row of 2017-01-12 is stamped at its end, after any label timestamped that day.
    stamps = agents[agents.sales_agent == "Bob"].event_timestamp
    assert not (stamps == pd.Timestamp("2017-01-12", tz="UTC")).any()


def test_thirty_day_window_drops_old_closes(hand):
    agents = hand["sales_agent_daily_stats"]
    # A1 closed 2017-01-10: inside the 30d window through 2017-02-08, out after (as_of_end 31).
    last = _row(agents, "sales_agent", "Ann", D(2017, 1, 31))
    assert (last.closed_30d, last.closed_90d, last.closed_all) == (2, 2, 2)


def test_open_pipeline_runs_from_engage_to_the_day_before_close(hand):
    agents = hand["sales_agent_daily_stats"]
    expected = {
        D(2016, 12, 31): None,  # before the first engage date: no row at all
        D(2017, 1, 1): (1, 4821),
        D(2017, 1, 5): (2, 4821 + 55),
        D(2017, 1, 9): (2, 4821 + 55),
        D(2017, 1, 10): (1, 55),  # A1 closed: out of the pipeline on its close day
        D(2017, 1, 15): (2, 55 + 4821),
        D(2017, 1, 20): (1, 4821),  # A2 closed; A3 stays open; A4 (Prospecting) never counts
        D(2017, 1, 31): (1, 4821),
    }
    for day, want in expected.items():
        if want is None:
            assert agents[agents.event_timestamp < pd.Timestamp(day, tz="UTC")].empty
            continue
        row = _row(agents, "sales_agent", "Ann", day)
        assert (row.open_pipeline_count, row.open_pipeline_value) == want, day
    bob = _row(agents, "sales_agent", "Bob", D(2017, 1, 12))
    assert bob.open_pipeline_count == 0  # engaged and closed the same day
    assert _row(agents, "sales_agent", "Bob", D(2017, 1, 12)).engaged_30d == 1


def test_every_entity_gets_a_dense_daily_grid(hand):
    agents = hand["sales_agent_daily_stats"]
    assert set(agents.sales_agent) == {"Ann", "Bob", "Idle"}
    assert len(agents) == 3 * 31  # 2017-01-01 .. 2017-01-31
    idle = _row(agents, "sales_agent", "Idle", D(2017, 1, 31))
    assert idle.closed_all == 0 and idle.win_rate_all == (0 + SMOOTHING_K * (2 / 3)) / SMOOTHING_K
    accounts = hand["account_daily_stats"]
    assert set(accounts.account) == {"Acme", "Betasoft"}  # null accounts are not an entity
    assert _row(accounts, "account", "Acme", D(2017, 1, 31)).closed_all == 2
    products = hand["product_daily_stats"]
    assert _row(products, "product", "GTX Pro", D(2017, 1, 31)).open_pipeline_count == 1


def test_product_sector_cells_follow_the_same_time_rule(hand):
    cells = hand["product_sector_daily_stats"]
    # Every catalogue product x every account sector, one row per day 2017-01-01 .. 01-31.
    assert len(cells) == 2 * 2 * 31
    assert set(zip(cells["product"], cells["sector"], strict=True)) == {
        ("GTX Pro", "tech"),
        ("GTX Pro", "retail"),
        ("MG Special", "tech"),
        ("MG Special", "retail"),
    }
    # A1 (GTX Pro, Acme = tech) won on 2017-01-10: counted from its close day, never before.
    before = _cell(cells, "GTX Pro", "tech", D(2017, 1, 9))
    on = _cell(cells, "GTX Pro", "tech", D(2017, 1, 10))
    assert (before.closed_all, before.won_all, before.win_rate_all) == (0, 0, GLOBAL_PRIOR)
    assert (before.open_pipeline_count, before.open_pipeline_value) == (1, 4821)
    assert (on.closed_all, on.won_all, on.closed_30d, on.won_30d) == (1, 1, 1, 1)
    assert on.win_rate_all == pytest.approx((1 + SMOOTHING_K * 1.0) / (1 + SMOOTHING_K))
    # A3 (GTX Pro, no account) is in no cell: the tech cell's pipeline is empty after A1 closes.
    late = _cell(cells, "GTX Pro", "tech", D(2017, 1, 31))
    assert (late.open_pipeline_count, late.open_pipeline_value, late.engaged_30d) == (0, 0, 0)
    assert _cell(cells, "GTX Pro", "tech", D(2017, 1, 30)).engaged_30d == 1  # A1 engaged 01-01
    # B1 (GTX Pro, Betasoft = retail) won on its engage day 2017-01-12.
    assert _cell(cells, "GTX Pro", "retail", D(2017, 1, 11)).won_all == 0
    same_day = _cell(cells, "GTX Pro", "retail", D(2017, 1, 12))
    assert (same_day.won_all, same_day.open_pipeline_count, same_day.engaged_30d) == (1, 0, 1)
    # A2 (MG Special, tech) lost on 2017-01-20: global = 2 won / 3 closed.
    lost = _cell(cells, "MG Special", "tech", D(2017, 1, 20))
    assert (lost.closed_all, lost.won_all) == (1, 0)
    assert lost.win_rate_all == (0 + SMOOTHING_K * (2 / 3)) / (1 + SMOOTHING_K)
    assert _cell(cells, "MG Special", "tech", D(2017, 1, 19)).closed_all == 0
    empty = _cell(cells, "MG Special", "retail", D(2017, 1, 31))
    assert (empty.closed_all, empty.open_pipeline_count) == (0, 0)
    assert empty.win_rate_all == (0 + SMOOTHING_K * (2 / 3)) / SMOOTHING_K


def test_opportunity_rows_carry_the_account_sector(hand):
    opp = hand["opportunity"].groupby("opportunity_id")["sector"].first()
    assert opp["A1"] == "tech" and opp["B1"] == "retail"
    assert pd.isna(opp["A3"]) and pd.isna(opp["A4"])  # no account, no sector


def test_opportunity_rows_never_leak_the_outcome(hand):
    opp = hand["opportunity"]
    assert "close_value" not in opp.columns and "close_date" not in opp.columns
    a1 = opp[opp.opportunity_id == "A1"].sort_values("event_timestamp")
    assert list(a1.deal_stage) == ["Engaging", "Won"]
    assert list(a1.event_timestamp) == [
        pd.Timestamp("2017-01-01 23:59:59", tz="UTC"),
        pd.Timestamp("2017-01-10 23:59:59", tz="UTC"),
    ]
    assert list(opp[opp.opportunity_id == "B1"].deal_stage) == ["Won"]  # same-day close
    a4 = opp[opp.opportunity_id == "A4"]
    assert list(a4.deal_stage) == ["Prospecting"]
    assert a4.event_timestamp.iloc[0] == pd.Timestamp("2017-01-31 23:59:59", tz="UTC")
    assert pd.isna(a4.engage_date.iloc[0])


def test_as_of_end_ignores_later_facts():
    out = compute_feature_tables(_tables(HAND_DEALS), as_of_end=D(2017, 1, 15))
    ann = out["sales_agent_daily_stats"]
    assert ann.event_timestamp.max() == pd.Timestamp("2017-01-15 23:59:59", tz="UTC")
    a2 = out["opportunity"][out["opportunity"].opportunity_id == "A2"]
    assert list(a2.deal_stage) == ["Engaging"]  # closes on the 20th, after the snapshot


def test_profiles_are_static_and_early(hand):
    accounts = hand["account_profile"].set_index("account")
    assert bool(accounts.loc["Betasoft", "has_parent"]) and not accounts.loc["Acme", "has_parent"]
    for view in ("account_profile", "product_profile", "sales_agent_profile"):
        assert (hand[view].event_timestamp == pd.Timestamp(PROFILE_TIMESTAMP)).all()
    assert set(hand["sales_agent_profile"].columns) == {
        "sales_agent",
        "event_timestamp",
        "manager",
        "regional_office",
    }


def test_every_row_has_a_utc_timestamp(hand):
    for view, frame in hand.items():
        assert str(frame.event_timestamp.dtype) == "datetime64[us, UTC]", view
        assert frame.event_timestamp.notna().all(), view


def test_missing_table_is_a_clear_error():
    tables = _tables(HAND_DEALS)
    del tables["products"]
    with pytest.raises(FeatureTablesError, match="products"):
        compute_feature_tables(tables)


@pytest.mark.parametrize("seed", [3, 11])
def test_random_rows_equal_the_slow_reference(seed):
    tables = random_tables(1500, seed)
    out = compute_feature_tables(tables)
    deals = deals_from(tables["sales_pipeline"], tables["accounts"])
    prices = dict(
        zip(tables["products"]["product"], tables["products"]["sales_price"], strict=True)
    )
    rng = random.Random(seed)
    for view, key in (
        ("sales_agent_daily_stats", "sales_agent"),
        ("account_daily_stats", "account"),
        ("product_daily_stats", "product"),
    ):
        frame = out[view]
        for i in rng.sample(range(len(frame)), 40):
            row = frame.iloc[i]
            day = row.event_timestamp.date()
            expected = reference_stats_row(deals, prices, key, row[key], day)
            got = {name: row[name] for name in expected}
            got = {k: (float(v) if "rate" in k else int(v)) for k, v in got.items()}
            assert got == expected, (view, row[key], day)
    cells = out["product_sector_daily_stats"]
    assert cells["sector"].notna().all() and len(cells) == 4 * 3 * cells.event_timestamp.nunique()
    for i in rng.sample(range(len(cells)), 60):
        row = cells.iloc[i]
        day = row.event_timestamp.date()
        cell = (row["product"], row["sector"])
        expected = reference_stats_row(deals, prices, ("product", "sector"), cell, day)
        got = {name: row[name] for name in expected}
        got = {k: (float(v) if "rate" in k else int(v)) for k, v in got.items()}
        assert got == expected, ("product_sector_daily_stats", cell, day)


def test_write_feature_tables_commits_every_view_under_one_manifest(tmp_path, hand):
    lake = Lake.from_settings(Settings(home=tmp_path))
    rows = write_feature_tables(lake, hand, {"snapshot": "2017-12-31"})
    assert rows == {view: len(frame) for view, frame in hand.items()}
    manifest = lake.read_manifest(features_manifest_key("2017-12-31"))
    assert set(manifest.objects) == {feature_key(view, "2017-12-31") for view in hand}
    assert manifest.metadata["snapshot"] == "2017-12-31" and manifest.metadata["rows"] == rows
    assert not lake.exists(feature_key("sales_agent_daily_stats", "2017-12-31"))  # versioned
    back = read_feature_table(lake, "sales_agent_daily_stats").to_pandas()
    pd.testing.assert_frame_equal(back, hand["sales_agent_daily_stats"])


def test_a_crash_between_views_leaves_the_previous_build_whole(tmp_path, hand):
    """Issue 12, defect 9: eight separate objects, a crash after three of them, and readers saw
    views from two snapshots. Now the set is committed by one manifest write."""
    lake = Lake.from_settings(Settings(home=tmp_path))
    write_feature_tables(lake, hand, {"snapshot": "2017-11-30"})
    before = {view: read_feature_table(lake, view) for view in hand}
    later = {view: frame.head(1) for view, frame in hand.items()}
    written = 0
    real_put = lake._put

    def put_then_crash(key, data):
        nonlocal written
        real_put(key, data)
        written += 1
        if written == 3:
            raise OSError("connection reset by peer")

    lake._put = put_then_crash  # type: ignore[method-assign]
    lake.attempts, lake.backoff_s = 1, 0
    with pytest.raises(Exception, match="connection reset"):
        write_feature_tables(lake, later, {"snapshot": "2017-12-31"})
    lake._put = real_put  # type: ignore[method-assign]
    assert feature_build(lake)["snapshot"] == "2017-11-30"
    for view in hand:
        assert read_feature_table(lake, view).equals(before[view]), view
    # the rerun publishes the new build whole and sweeps the crash's orphans
    write_feature_tables(lake, later, {"snapshot": "2017-12-31"})
    assert feature_build(lake)["snapshot"] == "2017-12-31"
    for view in hand:
        assert read_feature_table(lake, view).num_rows == 1, view
        assert len(list(lake.list(f"features/{view}"))) == 2  # one per snapshot, no orphan


def test_non_finite_features_are_never_published(tmp_path, hand):
    lake = Lake.from_settings(Settings(home=tmp_path))
    broken = dict(hand)
    profile = hand["account_profile"].copy()
    profile.loc[0, "revenue"] = float("inf")
    broken["account_profile"] = profile
    with pytest.raises(FeatureTablesError, match="account_profile: column revenue is inf"):
        write_feature_tables(lake, broken)
    assert not lake.exists(FEATURES_CURRENT_KEY)


def test_reading_features_before_any_build_says_what_to_run(tmp_path):
    from feature_repo.definitions import NoFeatureTablesError

    lake = Lake.from_settings(Settings(home=tmp_path))
    with pytest.raises(NoFeatureTablesError, match=r"No feature tables in .*run `crm features`"):
        read_feature_table(lake, "opportunity")


def test_build_from_a_published_validated_snapshot(tmp_path):
    lake = Lake.from_settings(Settings(home=tmp_path))
    snapshot = "2026-11-27"  # landed today, data ends 2017-12-31
    tables = {name: apply_aliases(name, generate(2000, seed=3).tables[name])[0] for name in TABLES}
    lake.publish(
        validated_manifest_key(snapshot),
        {validated_key(name, snapshot): table for name, table in tables.items()},
    )
    assert snapshot_as_of(snapshot, tables["sales_pipeline"]) == D(2017, 12, 31)
    assert snapshot_as_of("2017-06-30", tables["sales_pipeline"]) == D(2017, 6, 30)
    rows = build_feature_tables(lake)  # the latest validated snapshot
    agents = read_feature_table(lake, "sales_agent_daily_stats").to_pandas()
    assert rows["sales_agent_daily_stats"] == len(agents) > 0
    assert agents.event_timestamp.max() == pd.Timestamp("2017-12-31 23:59:59", tz="UTC")
    assert "GTXPro" not in set(read_feature_table(lake, "product_profile")["product"].to_pylist())
    build = feature_build(lake)
    assert build["snapshot"] == snapshot and build["as_of_end"] == "2017-12-31"
    assert build["validated_txid"] == lake.read_manifest(validated_manifest_key(snapshot)).txid
    # Arrow input gives exactly what the same data as pandas gives.
    frames = compute_feature_tables({k: v.to_pandas() for k, v in tables.items()})
    pd.testing.assert_frame_equal(agents, frames["sales_agent_daily_stats"])


def test_each_snapshot_has_its_own_build_and_the_newest_is_current(tmp_path, hand):
    """Issue 14: a backfill of an older snapshot publishes that snapshot's build beside the
    others and leaves Feast's sources on the newest; each build stays readable by snapshot."""
    from feature_repo.definitions import NoFeatureTablesError, feature_snapshots

    lake = Lake.from_settings(Settings(home=tmp_path))
    later = {view: frame.head(1) for view, frame in hand.items()}
    write_feature_tables(lake, later, {"snapshot": "2017-12-31"})
    write_feature_tables(lake, hand, {"snapshot": "2017-11-30"})  # a backfill
    assert feature_snapshots(lake) == ["2017-11-30", "2017-12-31"]
    assert feature_build(lake)["snapshot"] == "2017-12-31"  # still the current build
    assert lake.read_json(FEATURES_CURRENT_KEY)["snapshot"] == "2017-12-31"
    view = "sales_agent_daily_stats"
    assert read_feature_table(lake, view).num_rows == 1
    assert read_feature_table(lake, view, "2017-11-30").num_rows == len(hand[view])
    assert feature_build(lake, "2017-11-30")["rows"][view] == len(hand[view])
    with pytest.raises(NoFeatureTablesError, match=r"run `crm features --snapshot 2017-10-31`"):
        feature_build(lake, "2017-10-31")
