"""The `crm-daily` chain run for real under Prefect's test harness, on a local profile: it lands
the configured source and runs every step; a run that finds another one holding the lake fails
at once, names that run and is reported to the alert webhook; a failed gate stops the chain."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feature_tables.published import feature_build
from infra.lake import Lake, LeaseHeldError
from infra.layout import FEATURES_CURRENT_KEY, PIPELINE_RUN_LEASE
from infra.settings import Settings, get_settings
from ingestion.landing import list_snapshots
from tests.support.servers import Webhook
from validation.published import validated_snapshots

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""
    hook = Webhook()
    try:
        yield hook.url, hook.received
    finally:
        hook.close()


@pytest.fixture
def daily_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: tuple[str, list]
) -> Settings:
    monkeypatch.setenv("CRM_PROFILE", "local")
    monkeypatch.setenv("CRM_HOME", str(tmp_path / "crm"))
    monkeypatch.setenv("CRM_DAILY_SOURCE", f"dir:{DATA / 'base'}")
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", webhook[0])
    return get_settings()


def test_the_daily_chain_lands_the_configured_source_and_runs_every_step(
    prefect_harness: None, daily_settings: Settings, webhook: tuple[str, list]
) -> None:
    from flows.daily import daily

    summary = daily(snapshot="2017-06-30")
    assert summary["source"].startswith("dir:")
    assert list(summary["seconds"]) == [
        "land",
        "validate",
        "features",
        "materialize",
        "score",
        "monitor",
        "total",
    ]
    # No model was trained yet: the chain completes and says why nothing was scored.
    assert "open deals not scored (`crm train`)" in summary["scored"]["skipped"]
    assert "nothing to monitor (`crm train`)" in summary["monitored"]["skipped"]
    assert summary["monitored"]["event_id"] is None
    lake = Lake.from_settings(daily_settings)
    assert list_snapshots(lake) == validated_snapshots(lake) == ["2017-06-30"]
    assert feature_build(lake)["snapshot"] == "2017-06-30"
    assert summary["materialized"] and all(n >= 0 for n in summary["materialized"].values())
    assert webhook[1] == []  # nothing failed, nothing reported
    assert not lake.exists(f"_leases/{PIPELINE_RUN_LEASE}.json")  # released at the end


def test_a_second_run_fails_naming_the_running_one_and_is_reported(
    prefect_harness: None, daily_settings: Settings, webhook: tuple[str, list]
) -> None:
    from flows.daily import daily

    lake = Lake.from_settings(daily_settings)
    with (
        lake.held_for_a_run(PIPELINE_RUN_LEASE, owner="flow run crm-daily/early-bird (abc)"),
        pytest.raises(LeaseHeldError) as refused,
    ):
        daily(snapshot="2017-06-30")
    message = str(refused.value)
    assert message.startswith(
        "this lake (one pipeline run at a time) is being written by flow run crm-daily/early-bird"
    )
    assert "early-bird" in message and "retry after it finishes" in message
    assert list_snapshots(lake) == []  # it stopped before landing anything
    (alert,) = webhook[1]
    assert alert["flow"] == "crm-daily" and alert["state"] == "Failed"
    assert "early-bird" in alert["text"] and alert["text"].startswith("crm-feature-platform: ")


def test_a_failed_gate_stops_the_chain_with_the_reason(
    prefect_harness: None,
    daily_settings: Settings,
    webhook: tuple[str, list],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from flows.daily import daily
    from validation.errors import ValidationGateError

    source = tmp_path / "csv"
    shutil.copytree(DATA / "base", source)
    shutil.copy(DATA / "broken" / "close_before_engage" / "sales_pipeline.csv", source)
    monkeypatch.setenv("CRM_QUALITY_THRESHOLD", "1.0")
    monkeypatch.setenv("CRM_DAILY_SOURCE", f"dir:{source}")
    with pytest.raises(ValidationGateError) as failed:
        daily(snapshot="2017-07-31")
    lake = Lake.from_settings(daily_settings)
    assert list_snapshots(lake) == ["2017-07-31"] and validated_snapshots(lake) == []
    assert not lake.exists(FEATURES_CURRENT_KEY)  # nothing after the gate ran
    (alert,) = webhook[1]
    assert alert["state"] == "Failed" and str(failed.value).split(":")[0] in alert["text"]
