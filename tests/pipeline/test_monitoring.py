"""Monitoring end to end on the local profile, under Prefect's test harness.

One synthetic history is landed as four snapshots through the land path (land -> validate ->
features -> `feast apply`; the scenario of `crm bench monitoring`); a champion is trained on the
first and every snapshot is batch-scored, then monitored by the `monitor` flow. The history
drifts (the generator's knob, ingestion/drift.py) from the day after the third snapshot: the
next two raise no alarm; the last, two weeks into the drift (a premium product takes over new
deals, retail wins less, a team leaves), is detected: the report names the drifted features,
the retraining event reaches the Prefect API, the alert webhook says what drifted, and
`train-weekly` (what prefect.yaml's trigger runs) trains on the drifted snapshot and its gate
decides. Realised performance is computed once later snapshots show deals closed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from bench.monitoring import DRIFT, OPPORTUNITIES, SEED, SNAPSHOTS, land_snapshot
from infra.lake import Lake
from infra.layout import monitoring_report_keys
from infra.settings import PROJECT_ROOT, Settings
from tests.support.profiles import local_profile_env
from tests.support.servers import Webhook

UNDRIFTED = SNAPSHOTS[1:3]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture(scope="module")
def world(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory, webhook: Webhook
) -> Iterator[dict[str, Any]]:
    """Three snapshots landed, scored and monitored; then the retraining the event asks for."""
    from flows.daily import weekly_train
    from flows.monitor import monitor
    from ingestion.synthetic import as_of, generate
    from serving.batch import score_snapshot
    from training.config import TrainingConfig
    from training.run import train

    home = tmp_path_factory.mktemp("monitoring") / ".crm"
    with local_profile_env(home, CRM_ALERT_WEBHOOK_URL=webhook.url) as settings:
        history = generate(OPPORTUNITIES, seed=SEED, drift=DRIFT)
        monitored: dict[str, dict[str, Any]] = {}
        alerts: dict[str, int] = {}
        trained = None
        for snapshot in SNAPSHOTS:
            source = as_of(history, date.fromisoformat(snapshot))
            land_snapshot(settings, source, snapshot)
            if trained is None:
                trained = train(settings, TrainingConfig(search_size=2, seed=7))
                assert trained.decision is not None and trained.decision.promoted, trained
            score_snapshot(settings, snapshot)
            monitored[snapshot] = monitor(snapshot=snapshot)
            alerts[snapshot] = len(webhook.received)
        retrained = weekly_train(snapshot=SNAPSHOTS[-1])
        yield {
            "settings": settings,
            "monitored": monitored,
            "alerts": alerts,
            "retrained": retrained,
        }


def report(settings: Settings, snapshot: str) -> dict[str, Any]:
    json_key, _ = monitoring_report_keys(snapshot)
    return dict(Lake.from_settings(settings).read_json(json_key))


def test_two_undrifted_snapshots_raise_no_alarm(world: dict[str, Any]) -> None:
    for snapshot in [SNAPSHOTS[0], *UNDRIFTED]:
        result = world["monitored"][snapshot]
        assert result["alarm"] is False and result["breaches"] == [], result
        assert result["event_id"] is None and world["alerts"][snapshot] == 0
        body = report(world["settings"], snapshot)
        assert body["rows"] > 1000 and body["model"]["version"] == "1"
        assert body["model"]["reference_population"].startswith("open deals")
        judged = [f for f in body["features"] if f["judged"]]
        assert judged and all(f["psi"] < body["thresholds"]["psi"] for f in judged)
        assert body["prediction"]["drifted"] is False
        assert body["quality"]["breached"] is False and body["quality"]["score"] > 0.9
    # The training snapshot against its own reference: nothing moved at all.
    first = report(world["settings"], SNAPSHOTS[0])
    assert max(f["psi"] for f in first["features"]) == 0.0


def test_the_drifted_snapshot_is_detected_and_says_what_drifted(world: dict[str, Any]) -> None:
    snapshot = SNAPSHOTS[-1]
    result = world["monitored"][snapshot]
    assert result["alarm"] is True
    drifted_names = set(result["drifted_features"])
    assert {"product_profile__sales_price", "product_profile__series"} <= drifted_names
    assert not any(name.startswith("account_profile__") for name in drifted_names)
    body = report(world["settings"], snapshot)
    price = next(f for f in body["features"] if f["name"] == "product_profile__sales_price")
    assert price["psi"] >= body["thresholds"]["psi"]
    assert price["p_value"] < body["thresholds"]["p_value"]
    assert price["current"]["mean"] > 2 * price["reference"]["mean"]  # GTK 500 took over
    assert body["prediction"]["drifted"] is True
    # Evidently's page over the same rows is written beside the JSON.
    _, html_key = monitoring_report_keys(snapshot)
    page = Lake.from_settings(world["settings"]).get_bytes(html_key).decode()
    assert "product_profile__sales_price" in page and "<html" in page.lower()


def test_the_breach_emits_the_event_and_alerts_with_what_drifted(
    world: dict[str, Any], webhook: Webhook
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.monitor import DRIFT_EVENT, model_resource

    result = world["monitored"][SNAPSHOTS[-1]]
    assert result["event_id"]
    events: list[Any] = []
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while not events and time.monotonic() < deadline:
            only = EventFilter(event=EventNameFilter(name=[DRIFT_EVENT]))
            page = client.read_events(only, limit=50)  # the server refuses its default 100
            events = [e for e in page.events if str(e.id) == result["event_id"]]
            time.sleep(0.5)
    (event,) = events
    assert event.resource.id == model_resource(world["settings"])
    assert event.payload["snapshot"] == SNAPSHOTS[-1]
    assert "product_profile__series" in event.payload["drifted_features"]
    (alert,) = webhook.received
    assert alert["event"] == DRIFT_EVENT and "product_profile__series" in alert["text"]
    assert alert["text"].startswith(f"crm-feature-platform: drift on snapshot {SNAPSHOTS[-1]}")


def test_the_train_deployment_is_triggered_by_that_event(world: dict[str, Any]) -> None:
    """prefect.yaml's trigger on `train-weekly` is a valid deployment trigger that matches the
    event the flow emits, and passes its snapshot on."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.events.schemas.events import Resource, ResourceSpecification

    from flows.monitor import DRIFT_EVENT, model_resource

    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    deployment = next(d for d in config["deployments"] if d["name"] == "train-weekly")
    (spec,) = deployment["triggers"]
    trigger = DeploymentEventTrigger(**spec)
    assert trigger.expect == {DRIFT_EVENT}
    resource = Resource({"prefect.resource.id": model_resource(world["settings"])})
    assert isinstance(trigger.match, ResourceSpecification) and trigger.match.matches(resource)
    assert trigger.parameters == {"snapshot": "{{ event.payload.snapshot }}"}


def test_the_triggered_training_runs_and_the_gate_decides(world: dict[str, Any]) -> None:
    from training.registry import CHAMPION, alias_version

    trained = world["retrained"]["train"]
    decision = trained["decision"]
    assert trained["lineage"]["snapshot"] == SNAPSHOTS[-1]
    assert decision["version"] == "2" and decision["champion_version"] == "1"
    assert decision["outcome"] and decision["reason"]
    champion = alias_version(world["settings"], CHAMPION)
    assert champion == ("2" if decision["promoted"] else "1")


def test_realised_performance_once_outcomes_arrive(world: dict[str, Any]) -> None:
    first = report(world["settings"], SNAPSHOTS[0])["performance"]
    assert first["pairs"] == 0  # no earlier predictions: nothing to judge yet
    second = report(world["settings"], SNAPSHOTS[1])["performance"]
    (batch,) = second["by_version"]
    assert batch["source"] == "batch" and batch["model_version"] == "1"
    assert batch["pairs"] == second["pairs"] > 30
    assert 0 < batch["won"] < batch["pairs"] and batch["auc"] is not None
    assert batch["base_rate_brier"] > 0 and batch["brier_skill"] is not None
    assert sum(week["pairs"] for week in second["by_week"]) == batch["pairs"]
    assert "batch v1" in second["calibration"]
    later = [report(world["settings"], s)["performance"] for s in SNAPSHOTS[2:]]
    pairs = [second["pairs"], *(p["pairs"] for p in later)]
    assert pairs == sorted(pairs) and pairs[-1] > pairs[0]  # more closed each week
    assert len({w["week"] for w in later[-1]["by_week"]}) == len(SNAPSHOTS) - 1


def test_the_figures_are_logged_on_the_champions_run(world: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    settings = world["settings"]
    run_id = report(settings, SNAPSHOTS[0])["model"]["run_id"]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    alarms = {m.step: m.value for m in client.get_metric_history(run_id, "monitor_alarm")}
    assert alarms == {int(s.replace("-", "")): float(s == SNAPSHOTS[-1]) for s in SNAPSHOTS}
    skill = client.get_metric_history(run_id, "realised_batch_brier_skill")
    assert {m.step for m in skill} == {int(s.replace("-", "")) for s in SNAPSHOTS[1:]}
    artifacts = {a.path for a in client.list_artifacts(run_id, "monitoring")}
    assert f"monitoring/snapshot={SNAPSHOTS[-1]}" in artifacts


def test_crm_monitor_prints_the_verdict(world: dict[str, Any]) -> None:
    from tests.support.cli import crm_json

    settings = world["settings"]
    env = {"CRM_PROFILE": "local", "CRM_HOME": str(settings.home)}
    summary = crm_json(env, "monitor", "--snapshot", SNAPSHOTS[1])
    assert summary["snapshot"] == SNAPSHOTS[1] and summary["alarm"] is False
    assert summary["report"] == monitoring_report_keys(SNAPSHOTS[1])[0]


def test_crm_monitor_without_a_snapshot_build_is_one_line(tmp_path: Path) -> None:
    from tests.support.cli import crm

    env = {"CRM_PROFILE": "local", "CRM_HOME": str(tmp_path / ".crm")}
    result = crm("monitor", "--snapshot", "2017-12-03", env=env, cwd=tmp_path)
    stderr = result.stderr.strip()
    assert result.returncode == 1 and "Traceback" not in stderr + result.stdout
    assert len(stderr.splitlines()) == 1 and stderr.startswith("monitor failed:"), stderr
    assert "crm features" in stderr


def test_the_served_log_is_judged_checked_for_skew_and_realised(world: dict[str, Any]) -> None:
    """Scores served on the first snapshot's scoring day, logged as the scorer logs them: the
    next snapshot's report judges their features, recomputes them offline (skew) and joins
    them with the outcomes like the batch scores."""
    from feature_repo.entities import DEAL_KEYS
    from infra.layout import prediction_log_prefix
    from monitoring.current import open_deals
    from monitoring.run import monitor_snapshot
    from serving.prediction_log import Served, to_table
    from serving.scorer import load_champion

    settings = world["settings"]
    lake = Lake.from_settings(settings)
    deals = open_deals(settings, SNAPSHOTS[0])
    loaded = load_champion(settings)
    spec = loaded.model.spec
    scores = loaded.model.predict_proba(deals.frame)
    rows = [
        Served(
            request_id=f"e2e-{i}",
            route="/score_batch",
            served_at=deals.at,
            result={
                "opportunity_id": row["opportunity_id"],
                "as_of": deals.at,
                "model_name": loaded.name,
                "model_version": loaded.version,
                "win_probability": float(p),
            },
            values=tuple(row[name] for name in spec.columns),
            names=tuple(spec.columns),
            timestamps={},
            keys={key: row[key] for key in DEAL_KEYS},
            engage_date=None if pd.isna(row["engage_date"]) else row["engage_date"],
            categorical=frozenset(spec.categorical),
        )
        for i, (row, p) in enumerate(zip(deals.frame.to_dict("records"), scores, strict=True))
    ]
    day = deals.at.date().isoformat()
    lake.write_parquet(f"{prediction_log_prefix(day)}/e2e.parquet", to_table(rows))

    body = monitor_snapshot(settings, SNAPSHOTS[1]).report
    served = body["served"]
    assert served["rows"] == served["rows_of_champion"] == len(deals.frame)
    assert served["features"] and {f["name"] for f in served["features"]} == set(spec.columns)
    skew = body["skew"]
    assert skew["sampled"] == min(settings.monitor_skew_sample, len(deals.frame))
    # Recomputed from the current build (the last snapshot's) at the time each was served: the
    # online path served what the offline store computes (the drift changed later deals only).
    assert skew["skewed"] == [], skew["skewed"]
    assert set(skew["features"]) >= set(spec.columns)
    by_source = {row["source"]: row for row in body["performance"]["by_version"]}
    assert by_source["served"]["pairs"] > 30
    assert by_source["served"]["model_version"] == loaded.version


def test_a_champion_without_a_reference_is_skipped_by_the_chain_and_named(
    world: dict[str, Any],
) -> None:
    """A champion trained before references were saved (its reference removed here, last): the
    daily chain's step says so and completes; monitoring it directly says what to do."""
    import shutil
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient
    from prefect import flow

    from flows.monitor import monitor_if_champion
    from monitoring.errors import NoReferenceError
    from monitoring.reference import REFERENCE_DIR, version_run_id
    from monitoring.run import monitor_snapshot
    from training.registry import CHAMPION, alias_version

    settings = world["settings"]
    version = alias_version(settings, CHAMPION)
    assert version is not None
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(
        version_run_id(settings, version)
    )
    shutil.rmtree(Path(urlparse(run.info.artifact_uri).path) / REFERENCE_DIR)

    @flow(name="monitor-step")
    def step() -> dict[str, Any]:  # the daily chain's step, in a flow of its own
        return monitor_if_champion(SNAPSHOTS[-1])

    assert "has no training reference" in step()["skipped"]
    with pytest.raises(NoReferenceError, match="Retrain with `crm train`"):
        monitor_snapshot(settings, SNAPSHOTS[-1])


def test_the_explorer_monitoring_page_shows_drift_skew_and_realised_performance(
    world: dict[str, Any],
) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    app = AppTest.from_file(str(PROJECT_ROOT / "serving" / "explorer" / "app.py"))
    app.default_timeout = 180
    app.run()
    app.switch_page("pages/monitoring.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == ["Monitoring"]
    assert app.selectbox[0].value == SNAPSHOTS[-1]  # the newest report first
    verdict = next(m.value for m in app.metric if m.label == "Verdict")
    assert verdict == "ALARM"
    warnings = " ".join(w.value for w in app.warning)
    assert "product_profile__series drifted" in warnings
    drift = next(d.value for d in app.dataframe if "psi" in d.value.columns)
    assert set(drift["snapshot"]) == {SNAPSHOTS[-1]}
    assert drift.loc[drift["feature"] == "product_profile__series", "drifted"].item()
    realised = next(d.value for d in app.dataframe if "brier_skill" in d.value.columns)
    assert (realised["pairs"] > 0).all()

    app.selectbox[0].select(SNAPSHOTS[1]).run()
    assert next(m.value for m in app.metric if m.label == "Verdict") == "no alarm"
