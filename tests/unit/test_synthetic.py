"""The synthetic generator: shape, every quirk of the real data, reproducibility and the signal."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ingestion.source_data import SourceData
from ingestion.synthetic import generate
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SALES_TEAMS, SCHEMAS, TABLES

N = 8800
OPEN = ("Engaging", "Prospecting")


@pytest.fixture(scope="module")
def data() -> SourceData:
    return generate(N, seed=42)


@pytest.fixture(scope="module")
def pipeline(data: SourceData) -> pd.DataFrame:
    return data.tables[SALES_PIPELINE].to_pandas()


@pytest.fixture(scope="module")
def accounts(data: SourceData) -> pd.DataFrame:
    return data.tables[ACCOUNTS].to_pandas()


def test_tables_have_the_landing_schemas_and_sizes(data: SourceData) -> None:
    assert set(data.tables) == set(TABLES)
    for name in TABLES:
        assert data.tables[name].schema.equals(SCHEMAS[name]), name
    rows = {name: data.tables[name].num_rows for name in TABLES}
    assert rows == {ACCOUNTS: 85, PRODUCTS: 7, SALES_TEAMS: 35, SALES_PIPELINE: N}
    assert data.source == "synthetic"


def test_stage_mix_is_close_to_the_real_data(pipeline: pd.DataFrame) -> None:
    share = pipeline["deal_stage"].value_counts(normalize=True)
    expected = {"Won": 0.48, "Lost": 0.28, "Engaging": 0.18, "Prospecting": 0.06}
    assert set(share.index) == set(expected)
    for stage, value in expected.items():
        assert abs(share[stage] - value) < 0.03, (stage, share[stage])


def test_stage_counts_scale_with_n() -> None:
    small = generate(2000, seed=3).tables[SALES_PIPELINE].to_pandas()
    assert len(small) == 2000
    assert abs((small["deal_stage"] == "Prospecting").sum() - round(2000 * 500 / 8800)) <= 1
    assert abs(small["account"].isna().sum() - 2000 * 1425 / 8800) < 0.05 * 2000 * 1425 / 8800


def test_reference_tables_match_the_real_ones(data: SourceData) -> None:
    products = data.tables[PRODUCTS].to_pylist()
    assert {p["product"]: (p["series"], p["sales_price"]) for p in products} == {
        "GTX Basic": ("GTX", 550),
        "GTX Pro": ("GTX", 4821),
        "MG Special": ("MG", 55),
        "MG Advanced": ("MG", 3393),
        "GTX Plus Pro": ("GTX", 5482),
        "GTX Plus Basic": ("GTX", 1096),
        "GTK 500": ("GTK", 26768),
    }
    teams = data.tables[SALES_TEAMS].to_pandas()
    assert teams["sales_agent"].is_unique
    assert teams["manager"].nunique() == 6
    assert set(teams["regional_office"]) == {"Central", "East", "West"}
    assert teams.groupby("manager")["regional_office"].nunique().max() == 1


def test_accounts_look_like_the_real_ones(accounts: pd.DataFrame) -> None:
    assert accounts["account"].is_unique
    assert set(accounts["sector"]) == {
        "technolgy", "medical", "retail", "software", "entertainment", "marketing", "finance",
        "telecommunications", "services", "employment",
    }  # fmt: skip
    assert accounts["revenue"].between(1, 12_000).all()
    assert (accounts["employees"] > 0).all()
    assert accounts["year_established"].between(1979, 2018).all()
    assert (accounts["office_location"] == "United States").mean() > 0.75


def test_quirk_product_spelling_differs_between_tables(
    data: SourceData, pipeline: pd.DataFrame
) -> None:
    assert "GTX Pro" in data.tables[PRODUCTS].column("product").to_pylist()
    assert "GTX Pro" not in set(pipeline["product"])
    assert abs((pipeline["product"] == "GTXPro").sum() - 1480) < 150


def test_quirk_sector_and_office_typos(accounts: pd.DataFrame) -> None:
    assert (accounts["sector"] == "technolgy").sum() == 12
    assert "technology" not in set(accounts["sector"])
    assert (accounts["office_location"] == "Philipines").sum() >= 1


def test_quirk_blank_account_only_on_open_deals(pipeline: pd.DataFrame) -> None:
    blank = pipeline["account"].isna()
    assert abs(blank.sum() - 1425) < 60
    assert pipeline.loc[blank, "deal_stage"].isin(OPEN).all()


def test_quirk_open_deals_have_no_close_and_prospects_no_engage(pipeline: pd.DataFrame) -> None:
    open_ = pipeline["deal_stage"].isin(OPEN)
    assert pipeline.loc[open_, ["close_date", "close_value"]].isna().all().all()
    prospecting = pipeline["deal_stage"] == "Prospecting"
    assert pipeline.loc[prospecting, "engage_date"].isna().all()
    assert pipeline.loc[~prospecting, "engage_date"].notna().all()
    closed = pipeline[~open_]
    assert closed[["engage_date", "close_date", "close_value", "account"]].notna().all().all()


def test_quirk_close_values(pipeline: pd.DataFrame, data: SourceData) -> None:
    assert (pipeline.loc[pipeline["deal_stage"] == "Lost", "close_value"] == 0).all()
    won = pipeline[pipeline["deal_stage"] == "Won"]
    assert (won["close_value"] > 0).all()
    products = data.tables[PRODUCTS].to_pandas()
    prices = products.set_index("product")["sales_price"]
    expected = won["product"].replace({"GTXPro": "GTX Pro"}).map(prices)
    ratio = won["close_value"] / expected
    assert ratio.between(0.6, 1.6).all()
    assert 0.95 < ratio.median() < 1.05
    assert data.tables[SALES_PIPELINE].schema.field("close_value").type == pa.int64()


def test_quirk_nothing_closes_before_march_2017(pipeline: pd.DataFrame) -> None:
    engage = pipeline["engage_date"].dropna()
    close = pipeline["close_date"].dropna()
    assert engage.min() < dt.date(2016, 11, 1)
    assert engage.min() >= dt.date(2016, 10, 20)
    assert close.min() >= dt.date(2017, 3, 1)
    assert max(engage.max(), close.max()) <= dt.date(2017, 12, 31)
    closed = pipeline.dropna(subset=["close_date"])
    assert (closed["close_date"] >= closed["engage_date"]).all()


def test_quirk_open_rows_duplicated_except_for_id(pipeline: pd.DataFrame) -> None:
    assert pipeline["opportunity_id"].is_unique
    rest = pipeline.drop(columns="opportunity_id")
    duplicated = rest.duplicated(keep="first")
    assert abs(duplicated.sum() - 350) <= 35
    assert pipeline.loc[rest.duplicated(keep=False), "deal_stage"].isin(OPEN).all()


def test_quirk_agents_without_deals_and_late_founding(
    data: SourceData, pipeline: pd.DataFrame, accounts: pd.DataFrame
) -> None:
    agents = set(data.tables[SALES_TEAMS]["sales_agent"].to_pylist())
    selling = set(pipeline["sales_agent"])
    assert selling < agents
    assert 3 <= len(agents - selling) <= 6
    first_year = (
        pipeline.dropna(subset=["account", "engage_date"])
        .assign(year=lambda f: f["engage_date"].map(lambda d: d.year))
        .groupby("account")["year"]
        .min()
    )
    founded = accounts.set_index("account")["year_established"]
    assert (founded.reindex(first_year.index) > first_year).any()


def test_quirk_subsidiaries_mostly_empty(accounts: pd.DataFrame) -> None:
    has_parent = accounts["subsidiary_of"].notna()
    assert 0 < has_parent.sum() < 0.25 * len(accounts)
    assert set(accounts.loc[has_parent, "subsidiary_of"]) <= set(accounts["account"])
    assert (accounts["subsidiary_of"] != accounts["account"]).all()


def test_references_are_consistent(data: SourceData, pipeline: pd.DataFrame) -> None:
    assert set(pipeline["account"].dropna()) <= set(data.tables[ACCOUNTS]["account"].to_pylist())
    known = set(data.tables[PRODUCTS]["product"].to_pylist()) | {"GTXPro"}
    assert set(pipeline["product"]) <= known


def test_opportunity_ids_look_real(pipeline: pd.DataFrame) -> None:
    assert pipeline["opportunity_id"].str.fullmatch(r"[0-9A-Z]{8}").all()


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(1500, seed=7), generate(1500, seed=7), generate(1500, seed=8)
    for name in TABLES:
        assert a.tables[name].equals(b.tables[name]), name
    assert a.ground_truth is not None and a.ground_truth.equals(b.ground_truth)
    assert a.checksums == b.checksums
    assert not a.tables[SALES_PIPELINE].equals(c.tables[SALES_PIPELINE])
    assert a.checksums["sales_pipeline.arrow"] != c.checksums["sales_pipeline.arrow"]


def test_ground_truth_is_kept_out_of_the_landed_tables(data: SourceData) -> None:
    truth = data.ground_truth
    assert truth is not None
    assert truth.column_names == ["opportunity_id", "win_probability", "won"]
    for name in TABLES:
        assert data.tables[name].column_names == SCHEMAS[name].names
        assert "win_probability" not in data.tables[name].column_names
    assert truth["opportunity_id"].equals(data.tables[SALES_PIPELINE]["opportunity_id"])
    frame = truth.to_pandas().join(data.tables[SALES_PIPELINE].to_pandas()["deal_stage"])
    assert frame["win_probability"].between(0, 1).all()
    assert frame.loc[frame["deal_stage"].isin(OPEN), "won"].isna().all()
    closed = frame[~frame["deal_stage"].isin(OPEN)]
    assert (closed["won"].astype(bool) == (closed["deal_stage"] == "Won")).all()


def test_planted_signal_has_the_intended_strength(data: SourceData) -> None:
    truth = data.ground_truth.to_pandas()
    closed = truth.dropna(subset=["won"])
    auc = roc_auc_score(closed["won"].astype(bool), closed["win_probability"])
    assert 0.70 <= auc <= 0.85, auc
    assert 0.60 < closed["won"].astype(bool).mean() < 0.66


def test_signal_is_learnable_from_engagement_time_features(
    data: SourceData, pipeline: pd.DataFrame, accounts: pd.DataFrame
) -> None:
    """A plain model on features known at engagement, trained on the past, beats chance later."""
    closed = pipeline[~pipeline["deal_stage"].isin(OPEN)].sort_values("engage_date")
    frame = closed.merge(accounts, on="account")
    month = frame["engage_date"].map(lambda d: d.month)
    features = pd.concat(
        [
            pd.get_dummies(frame["sales_agent"], prefix="agent"),
            pd.get_dummies(frame["product"] + "|" + frame["sector"], prefix="fit"),
            pd.get_dummies(frame["account"], prefix="account"),
            np.log(frame["revenue"]).rename("log_revenue"),
            month.isin([3, 6, 9, 12]).rename("quarter_end"),
        ],
        axis=1,
    ).astype(float)
    label = (frame["deal_stage"] == "Won").to_numpy()
    cut = int(len(frame) * 0.7)
    model = LogisticRegression(C=0.3, solver="liblinear").fit(features[:cut], label[:cut])
    auc = roc_auc_score(label[cut:], model.predict_proba(features[cut:])[:, 1])
    assert auc > 0.65, auc


def test_sizes_at_the_edges() -> None:
    tiny = generate(1, seed=1)
    assert tiny.tables[SALES_PIPELINE].num_rows == 1
    with pytest.raises(ValueError, match="at least 1"):
        generate(0)


def test_as_of_a_day_shows_the_history_the_crm_showed_then(data: SourceData) -> None:
    """Daily snapshots of one history (issue 14): a month later some open deals closed, new
    ones arrived, and nothing in either snapshot happened after its day."""
    from ingestion.synthetic import as_of

    full = data.tables[SALES_PIPELINE].to_pandas().set_index("opportunity_id")
    day1, day2 = dt.date(2017, 10, 31), dt.date(2017, 11, 30)
    first = as_of(data, day1)
    second = as_of(data, day2)
    a = first.tables[SALES_PIPELINE].to_pandas().set_index("opportunity_id")
    b = second.tables[SALES_PIPELINE].to_pandas().set_index("opportunity_id")
    for snapshot, day in ((a, day1), (b, day2)):
        assert snapshot["close_date"].dropna().max() <= day
        assert snapshot["engage_date"].dropna().max() <= day
        assert snapshot.loc[snapshot["close_date"].isna(), "close_value"].isna().all()
    assert set(a.index) < set(b.index) < set(full.index)  # new deals each month
    was_open = a.index[a["deal_stage"] == "Engaging"]
    closed_since = b.loc[was_open, "deal_stage"].isin(["Won", "Lost"])
    assert closed_since.sum() > 50  # closures
    stayed = b.index.intersection(a.index)
    closed_in_a = a.loc[stayed, "close_date"].notna()
    pd.testing.assert_frame_equal(a.loc[stayed][closed_in_a], b.loc[stayed][closed_in_a])
    # A deal's final stage is where its history leads; the truth knows no open deal's outcome.
    assert (
        b.loc[b["deal_stage"] != "Engaging", "deal_stage"]
        == full.loc[b.index[b["deal_stage"] != "Engaging"], "deal_stage"]
    ).all()
    truth = second.ground_truth.to_pandas().set_index("opportunity_id")
    assert set(truth.index) == set(b.index)
    assert truth.loc[b.index[b["close_date"].isna()], "won"].isna().all()
    assert as_of(data, dt.date(2018, 1, 1)) is data  # after the last day: the whole history
    assert first.checksums["as_of"] == "2017-10-31"
    assert first.checksums["sales_pipeline.arrow"] != data.checksums["sales_pipeline.arrow"]
