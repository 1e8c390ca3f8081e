"""The explorer's plain functions: slicing, totals, histograms, what-if knobs, error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.settings import Settings
from serving.client import InvalidRequest, NotFound, ServiceUnavailable, Unauthorized
from serving.explorer import data, runs, scoring
from serving.explorer.errors import ExplorerError, NoData, ServiceDown
from serving.schemas import Contribution, Score
from tests.support.servers import free_port


@pytest.fixture
def scored() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": ["A", "B", "C", "D"],
            "regional_office": ["East", "East", "West", "Central"],
            "sector": ["retail", "software", "retail", data.NO_ACCOUNT],
            "sales_price": [550, 1096, 4821, 26768],
            "win_probability": [0.5, 0.8, 0.25, 0.6],
            "expected_value": [275.0, 876.8, 1205.25, 16060.8],
        }
    )


def score(contributions: list[tuple[str, object, float]]) -> Score:
    return Score(
        opportunity_id="A",
        win_probability=0.61,
        expected_value=335.5,
        list_price=550.0,
        contributions=[
            Contribution(feature=f, value=v, contribution=c) for f, v, c in contributions
        ],
        base_margin=0.1,
        model_name="crm-win-probability",
        model_version="3",
        as_of=datetime(2018, 1, 1, tzinfo=UTC),
        feature_timestamps={
            "sales_agent_daily_stats": datetime(2017, 12, 31, 23, 59, 59, tzinfo=UTC),
            "product_profile": datetime(2000, 1, 1, tzinfo=UTC),
        },
        profile="local",
    )


def test_filters_keep_chosen_values_and_empty_choices_keep_all(scored: pd.DataFrame) -> None:
    assert data.filter_deals(scored, {"regional_office": []}).equals(scored)
    east_retail = data.filter_deals(scored, {"regional_office": ["East"], "sector": ["retail"]})
    assert east_retail["opportunity_id"].tolist() == ["A"]


def test_breakdown_and_totals_add_up(scored: pd.DataFrame) -> None:
    table = data.breakdown(scored, "regional_office")
    assert table["regional_office"].tolist() == ["Central", "West", "East"]  # by expected value
    east = table.set_index("regional_office").loc["East"]
    assert east["deals"] == 2 and east["list_value"] == 1646
    assert east["expected_value"] == pytest.approx(1151.8)
    assert east["mean_win_probability"] == pytest.approx(0.65)
    total = data.totals(scored)
    assert total["expected_value"] == pytest.approx(table["expected_value"].sum())
    assert total["deals"] == 4 and total["list_value"] == 33235


def test_histogram_counts_every_value_once() -> None:
    values = pd.Series(np.linspace(0, 1, 101).tolist() + [None])
    hist = data.histogram(values, bins=10)
    assert hist["count"].sum() == 101
    assert hist["bin"].iloc[0] == 0 and hist["bin_end"].iloc[-1] == 1
    assert data.histogram(pd.Series([None, None])).empty


def test_latest_rows_are_each_entitys_newest() -> None:
    frame = pd.DataFrame(
        {
            "product": ["GTX", "GTX", "MG"],
            "event_timestamp": pd.to_datetime(["2017-01-02", "2017-01-03", "2017-01-01"]),
            "won_30d": [1, 2, 5],
        }
    )
    latest = data.latest_rows(frame, ["product"]).set_index("product")
    assert latest.loc["GTX", "won_30d"] == 2 and latest.loc["MG", "won_30d"] == 5
    assert data.numeric_columns(frame, ["product"]) == ["won_30d"]


def test_scorer_endpoint_comes_from_the_settings(tmp_path: Path) -> None:
    default = scoring.ScorerEndpoint.from_settings(Settings(_env_file=None))
    assert default == scoring.ScorerEndpoint("http://127.0.0.1:3000", None)
    env_file = tmp_path / ".env"
    env_file.write_text("CRM_SCORER_URL=http://scorer:3000\nCRM_API_TOKEN=s3cret\n")
    custom = scoring.ScorerEndpoint.from_settings(Settings(_env_file=env_file))
    assert custom == scoring.ScorerEndpoint("http://scorer:3000", "s3cret")


def test_connect_to_a_closed_port_says_how_to_start_the_scorer() -> None:
    endpoint = scoring.ScorerEndpoint(f"http://127.0.0.1:{free_port()}", None)
    with pytest.raises(ServiceDown, match="make serve") as caught:
        scoring.connect(endpoint, timeout=2)
    assert endpoint.url in str(caught.value)


def test_client_errors_become_messages_that_say_what_to_do() -> None:
    endpoint = scoring.ScorerEndpoint("http://127.0.0.1:3000", None)
    assert isinstance(scoring.explain(NotFound("closed deal", 404), endpoint), NoData)
    assert "CRM_API_TOKEN" in str(scoring.explain(Unauthorized("no token", 401), endpoint))
    assert "make serve" in str(scoring.explain(ServiceUnavailable("down", 503), endpoint))
    refused = scoring.explain(InvalidRequest("bad field", 422), endpoint)
    assert type(refused) is ExplorerError and "bad field" in str(refused)


def test_contributions_carry_their_views_event_time() -> None:
    s = score(
        [
            ("product_profile__sales_price", 550, -0.05),
            ("sales_agent_daily_stats__win_rate_90d", 0.612345, 0.4),
            ("account_profile__sector", None, 0.01),
        ]
    )
    frame = scoring.contributions_frame(s)
    assert frame["feature"].tolist()[0] == "sales_agent_daily_stats__win_rate_90d"  # |0.4| first
    first = frame.iloc[0]
    assert first["value"] == "0.6123" and first["view"] == "sales_agent_daily_stats"
    assert first["event_timestamp"] == datetime(2017, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert frame.set_index("feature").loc["account_profile__sector", "value"] == "null"
    assert pd.isna(frame.set_index("feature").loc["account_profile__sector", "event_timestamp"])


def test_knobs_vary_numeric_features_within_sensible_ranges() -> None:
    s = score(
        [
            ("sales_agent_daily_stats__win_rate_90d", 0.6, 0.4),
            ("sales_agent_daily_stats__closed_30d", 4, 0.2),
            ("account_profile__revenue", 1250.5, 0.1),
            ("account_profile__year_established", 1983, 0.05),
            ("account_profile__sector", "retail", 0.3),
        ]
    )
    rate, count, revenue, year = scoring.knobs(s)  # the categorical one has no slider
    assert (rate.low, rate.high, rate.step) == (0.0, 1.0, 0.01)
    assert count.integer and count.high == 12 and scoring.typed(count, 7.0) == 7
    assert isinstance(scoring.typed(count, 7.0), int)
    assert not revenue.integer and revenue.low <= revenue.value <= revenue.high
    assert (year.low, year.high) == (1933, 2033) and year.integer
    assert scoring.feature_values(s)["account_profile__sector"] == "retail"


def test_tracking_server_down_names_the_command(tmp_path: Path) -> None:
    down = Settings(
        home=tmp_path, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}", _env_file=None
    )
    with pytest.raises(ServiceDown, match="make stack-up"):
        runs.tracking_client(down, timeout=2)
    with pytest.raises(NoData, match="make train"):
        runs.tracking_client(Settings(home=tmp_path, _env_file=None))
    assert not (tmp_path / "mlflow.db").exists()  # looking created nothing


def test_feature_tables_are_read_through_the_features_manifest(tmp_path: Path) -> None:
    """Issue 12, defect 9: the explorer reads the committed build, never a half-written one."""
    from feature_tables.compute import write_feature_tables
    from infra.lake import Lake

    lake = Lake.from_settings(Settings(profile="local", home=tmp_path / ".crm", _env_file=None))
    with pytest.raises(NoData, match="No feature table for opportunity: .*run `crm features`"):
        data.feature_table(lake, "opportunity")
    frame = pd.DataFrame(
        {
            "opportunity_id": ["A", "B"],
            "event_timestamp": pd.to_datetime(["2017-01-01", "2017-01-02"], utc=True),
        }
    )
    write_feature_tables(lake, {"opportunity": frame}, {"snapshot": "2017-01-31"})
    write_feature_tables(lake, {"opportunity": frame.head(1)}, {"snapshot": "2017-01-31"})
    assert data.feature_table(lake, "opportunity")["opportunity_id"].tolist() == ["A"]
    assert data.entity_keys(lake, "opportunity", "opportunity_id") == ["A"]
