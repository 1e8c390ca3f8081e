"""Every explorer page under Streamlit's AppTest, on a local profile the real pipeline prepared.

The scorer is deliberately not running here (CRM_SCORER_URL points at a closed port): the pages
that need it must say so and how to start it; the browser e2e test covers the scored path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from infra.lake import Lake
from infra.layout import predictions_key, predictions_manifest_key
from infra.settings import Settings
from serving.explorer import data
from tests.support.profiles import (
    BROKEN_ROWS,
    SNAPSHOTS,
    local_profile_env,
    prepare_local_profile,
)
from tests.support.servers import free_port
from validation.report import read_history

APP = Path(__file__).resolve().parents[2] / "serving" / "explorer" / "app.py"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict]]:
    """One local profile for the module: two validated snapshots, features, one model."""
    home = tmp_path_factory.mktemp("explorer") / ".crm"
    scorer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with local_profile_env(home, CRM_SCORER_URL=scorer) as settings:
        outputs = prepare_local_profile(settings, opportunities=1200, batch_scores=False)
        st.cache_data.clear()
        st.cache_resource.clear()
        yield settings, outputs


@pytest.fixture(scope="module")
def settings(prepared: tuple[Settings, dict]) -> Settings:
    return prepared[0]


def run_page(page: str | None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    if page:
        app.switch_page(f"pages/{page}.py")
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_pipeline_without_batch_scores_lists_open_deals_and_says_how_to_score_them(
    settings: Settings,
) -> None:
    app = run_page(None)  # the default page
    assert [t.value for t in app.title] == ["Pipeline"]
    assert not app.error  # the page never calls the scoring API
    [info] = app.info
    assert "No batch scores for snapshot" in info.value and "crm score --all" in info.value
    assert settings.profile.value == "local"

    lake = Lake.from_settings(settings)
    deals = data.open_deals(lake, data.latest_snapshot(lake))
    assert len(deals) > 100
    assert metric(app, "Open deals") == f"{len(deals):,}"
    assert metric(app, "List value") == f"${deals['sales_price'].sum():,.0f}"
    assert not [m for m in app.metric if m.label == "Expected value"]  # no scores, no fake ones

    east = deals[deals["regional_office"] == "East"]
    app.multiselect[2].select("East").run()  # Region
    assert metric(app, "Open deals") == f"{len(east):,}"
    table = app.dataframe[-1].value
    assert set(table["regional_office"]) == {"East"} and len(table) == len(east)


def test_pipeline_shows_the_batch_scores_and_says_when_they_are_stale(
    settings: Settings,
) -> None:
    """Scores committed for the earlier snapshot: shown for the open deals they cover, with a
    warning that they are older than the snapshot on the page."""
    lake = Lake.from_settings(settings)
    latest = data.latest_snapshot(lake)
    deals = data.open_deals(lake, latest)
    scored = deals.iloc[: len(deals) // 2]
    probability = np.linspace(0.1, 0.9, len(scored))
    table = pa.table(
        {
            "opportunity_id": scored["opportunity_id"].astype(str),
            "win_probability": probability,
            "expected_value": probability * scored["sales_price"].to_numpy(),
        }
    )
    manifest = predictions_manifest_key(SNAPSHOTS[0])
    lake.publish(manifest, {predictions_key(SNAPSHOTS[0]): table}, {"model": "m v9"})
    st.cache_data.clear()
    try:
        app = run_page(None)
    finally:
        lake.withdraw(manifest, [predictions_key(SNAPSHOTS[0])])
        st.cache_data.clear()
    warnings = [w.value for w in app.warning]
    assert any(f"of snapshot {SNAPSHOTS[0]}, older than {latest}" in w for w in warnings)
    assert any(
        f"{len(deals) - len(scored):,} open deals have no batch score" in w for w in warnings
    )
    assert any("Scored by m v9" in c.value for c in app.caption)
    expected = float(np.sum(probability * scored["sales_price"].to_numpy()))
    assert metric(app, "Expected value") == f"${expected:,.0f}"


def test_opportunity_without_scorer_says_which_service_is_down(settings: Settings) -> None:
    app = run_page("opportunity")
    assert [t.value for t in app.title] == ["Opportunity"]
    lake = Lake.from_settings(settings)
    open_ids = set(data.open_deals(lake, data.latest_snapshot(lake))["opportunity_id"])
    assert app.text_input[0].value in open_ids
    [error] = app.error
    assert "make serve" in error.value and "not ready" in error.value
    assert not app.slider  # no what-if without a score


def test_features_page_shows_registry_freshness_and_point_in_time(settings: Settings) -> None:
    app = run_page("features")
    assert [t.value for t in app.title] == ["Features"]
    views, services, freshness = (app.dataframe[i].value for i in range(3))
    assert set(views["view"]) >= {
        "sales_agent_daily_stats",
        "account_profile",
        "opportunity",
        "opportunity_request_features",
    }
    assert set(services["service"]) == {"opportunity_scoring_v1"}
    assert (freshness["online_lag"] == "up to date").all(), freshness
    assert (freshness["rows"] > 0).all()

    # Point in time: the first view/key at the newest day, checked against the offline rows.
    pit = app.dataframe[-2].value
    view, key = app.selectbox(key="pit_view").value, app.selectbox(key="pit_key").value
    day = app.date_input(key="pit_day").value
    at = pd.Timestamp(datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    offline = data.feature_table(Lake.from_settings(settings), view)
    join_key = offline.columns[0]
    rows = offline[
        (offline[join_key] == key) & (pd.to_datetime(offline["event_timestamp"], utc=True) < at)
    ]
    newest = rows.sort_values("event_timestamp").iloc[-1]
    served = dict(zip(pit["feature"], pit["value"], strict=True))
    for feature in ("win_rate_90d", "closed_30d", "open_pipeline_value"):
        assert served[feature] == data.display_value(newest[feature]), feature
    assert pd.Timestamp(pit["row_event_timestamp"].iloc[0]) == pd.Timestamp(
        newest["event_timestamp"]
    )


def test_quality_page_shows_latest_report_and_history(settings: Settings) -> None:
    app = run_page("quality")
    assert [t.value for t in app.title] == ["Data quality"]
    lake = Lake.from_settings(settings)
    history = read_history(lake)
    assert len(history) == 2
    latest = data.latest_report(lake)
    assert app.selectbox[0].value == latest["snapshot"] == history[-1]["snapshot"]
    assert metric(app, "Quality score") == f"{latest['score']:.3f}"
    assert metric(app, "Gate") == ("passed" if latest["passed"] else "failed")
    findings = next(d.value for d in app.dataframe if "rule" in d.value.columns)
    assert len(findings) == len(latest["findings"])
    shown_history = app.dataframe[-1].value
    assert shown_history["snapshot"].tolist() == [h["snapshot"] for h in history]

    # The earlier snapshot had deals with an unknown stage: they are in its quarantine.
    app.selectbox[0].select(history[0]["snapshot"]).run()
    assert not app.exception
    [expander] = app.expander
    assert expander.label == f"sales_pipeline: {BROKEN_ROWS:,} rows"
    reasons, rows = (d.value for d in expander.dataframe)
    assert reasons["rows"].sum() >= BROKEN_ROWS and (rows["deal_stage"] == "Negotiating").all()
    assert len(rows) == BROKEN_ROWS


def test_models_page_shows_each_model_against_the_base_rate(
    prepared: tuple[Settings, dict],
) -> None:
    _, outputs = prepared
    [report] = outputs["trainings"]
    decision = report.decision
    app = run_page("models")
    assert [t.value for t in app.title] == ["Models"]
    # First, in plain words: is there a champion, and does it beat the base rate?
    alias = "champion" if decision.promoted else "challenger"
    if decision.promoted:
        [status] = app.success
        assert f"Champion v{report.model_version} ({report.candidate})" in status.value
    else:  # 1,200 opportunities: too few test deals for an interval above 0 (measured)
        [status] = app.error
        assert status.value.startswith("**No champion.**")
        assert f"was not promoted: {decision.reason}" in status.value
    # Each model against the base rate, the registered one marked.
    against = app.dataframe[0].value.set_index("model")
    registered = f"{report.candidate} (registered)"
    assert {registered, "oracle", "base rate (training win rate)"} <= set(against.index)
    metrics = report.metrics[report.candidate]
    assert against.loc[registered, "Brier"] == pytest.approx(metrics["brier"])
    assert against.loc[registered, "Brier skill low"] == pytest.approx(metrics["brier_skill_low"])
    base = against.loc["base rate (training win rate)"]
    assert base["Brier"] == pytest.approx(metrics["base_rate_brier"])
    # The registered model's test metrics, as champion or challenger.
    compare = app.dataframe[1].value.set_index("metric")
    column = f"{alias} (v{report.model_version}, {report.candidate})"
    assert compare.loc["AUC (higher is better)", column] == pytest.approx(metrics["auc"])
    assert compare.loc["Brier skill vs base rate (higher is better)", column] == pytest.approx(
        metrics["brier_skill"]
    )
    # ROC, calibration and the registered model's reliability diagram of the one version
    captions = [caption for image in app.image for caption in image.captions]
    assert captions == [f"{alias} v{report.model_version}"] * 3


def test_pages_before_anything_ran_say_what_to_run(settings: Settings, tmp_path: Path) -> None:
    with local_profile_env(tmp_path / ".crm", CRM_SCORER_URL="http://127.0.0.1:9"):
        expected = {
            None: "make pipeline",
            "opportunity": "make pipeline",
            "features": "make materialize",
            "quality": "make validate",
            "models": "make train",
        }
        for page, command in expected.items():
            app = run_page(page)
            messages = " ".join(m.value for m in [*app.info, *app.error, *app.warning])
            assert command in messages, (page, messages)


def test_monitoring_page_without_reports_says_what_to_run(settings: Settings) -> None:
    app = run_page("monitoring")
    assert [t.value for t in app.title] == ["Monitoring"]
    assert any("crm monitor" in i.value for i in app.info)
    freshness = app.dataframe[-1].value
    assert (freshness["rows"] > 0).all()
