"""The promotion gate on a real (SQLite) MLflow tracking store and registry: skill first, then a
paired improvement over the champion; the registered candidate is the better one on validation,
and a baseline champion is loaded and scored like an XGBoost one."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from feature_repo.feature_services import SCORING_SERVICE
from infra.settings import Settings
from tests.support.training_data import generator_examples, scrambled_history
from training.config import TrainingConfig
from training.errors import RegistryUnavailable
from training.features import LABEL
from training.metrics import probability_metrics
from training.models import BASELINE
from training.registry import CHALLENGER, CHAMPION, alias_version, load_model
from training.run import train
from training.split import time_split
from training.summary import print_summary


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return generator_examples(6000, seed=21)


def test_skill_first_then_a_paired_win_over_the_champion(
    examples: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = Settings(home=Path(tmp_path_factory.mktemp("mlflow-home")))
    config = TrainingConfig(search_size=2)

    # Labels of the history shuffled: nothing to learn. Registered, never champion.
    noise = train(settings, config, examples=scrambled_history(examples))
    assert noise.decision is not None and not noise.decision.promoted
    assert noise.decision.outcome == "no_skill"
    assert noise.decision.reason.startswith("no skill: Brier ")
    assert alias_version(settings, CHAMPION) is None
    assert alias_version(settings, CHALLENGER) == noise.model_version == "1"

    # 30% of the history shuffled: a weaker model that still beats the base rate.
    weaker = train(settings, config, examples=scrambled_history(examples, share=0.3))
    assert weaker.decision is not None and weaker.decision.promoted, weaker.decision
    assert weaker.decision.outcome == "first_champion"
    assert alias_version(settings, CHAMPION) == "2"

    # The whole history: better on the same examples, beyond the paired interval's doubt.
    better = train(settings, config, examples=examples)
    decision = better.decision
    assert decision is not None and decision.promoted, decision
    assert decision.outcome == "beats_champion" and decision.champion_version == "2"
    assert decision.paired is not None and decision.paired["brier_gain"]["low"] > 0
    assert decision.champion_brier == pytest.approx(decision.paired["champion_brier"])
    assert alias_version(settings, CHAMPION) == "3"
    # On this data the logistic baseline wins on validation: it is the registered champion.
    assert better.candidate == better.selection.winner == BASELINE
    assert decision.candidate == BASELINE

    # The same model again: no paired improvement, the champion stays.
    again = train(settings, config, examples=examples)
    assert again.decision is not None and not again.decision.promoted
    assert again.decision.outcome == "champion_kept"
    assert again.decision.reason.startswith("champion v3 kept: no paired improvement")
    assert alias_version(settings, CHAMPION) == "3"
    assert alias_version(settings, CHALLENGER) == "4"

    summary = json.loads(json.dumps(again.to_dict()))  # what `crm train --json` prints
    assert summary["decision"]["promoted"] is False and summary["model_version"] == "4"
    assert summary["decision"]["skill"]["brier_skill"]["low"] > 0
    assert summary["decision"]["paired"]["brier_gain"]["estimate"] == 0.0
    assert summary["selection"]["winner"] == summary["candidate"] == BASELINE
    assert set(summary["metrics"]) == {"baseline", "xgboost", "oracle"}
    for model in ("baseline", "xgboost"):
        assert {"brier_skill_low", "log_loss_skill_high"} <= set(summary["metrics"][model])

    # what `crm train` shows for it, rendered from that JSON alone
    console = Console(record=True, width=250)
    print_summary(summary, console)
    shown = console.export_text()
    assert "v4 (baseline) not promoted: champion v3 kept" in shown
    assert f"MLflow run {again.run_id}" in shown and "baseline (registered)" in shown

    # the run recorded what it must: metrics with skill intervals, lineage, plots, the decision
    run = mlflow.get_run(again.run_id)
    assert run.data.tags["promoted"] == "False"
    assert run.data.tags["promotion_outcome"] == "champion_kept"
    assert run.data.tags["candidate"] == BASELINE
    assert run.data.params["lineage_feature_service"] == SCORING_SERVICE
    assert run.data.params["config_search_size"] == "2" and run.data.params["config_seed"] == "42"
    for name in (
        "xgboost_test_brier_skill",
        "xgboost_test_brier_skill_low",
        "baseline_test_log_loss_skill_high",
        "baseline_valid_log_loss",
        "gate_paired_brier_gain_low",
        "wall_time_s",
    ):
        assert name in run.data.metrics, name
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(again.run_id, "plots")}
    assert artifacts == {
        "plots/roc.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
        "plots/reliability.png",
    }

    # the registered baseline champion scores exactly like the model that was trained
    champion = load_model(settings, CHAMPION)
    assert champion.kind == BASELINE
    test = time_split(examples).test
    p = champion.predict_proba(test)
    assert np.allclose(p, better.models[BASELINE].predict_proba(test), atol=1e-6)
    rescored = probability_metrics(test[LABEL].to_numpy(), p)
    assert rescored["brier"] == pytest.approx(better.metrics[BASELINE]["brier"], abs=1e-6)


def test_an_unreachable_registry_is_an_error_not_no_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = Settings(home=tmp_path, mlflow_tracking_uri="http://127.0.0.1:9", _env_file=None)
    with pytest.raises(RegistryUnavailable) as info:
        alias_version(down, CHAMPION)
    assert "http://127.0.0.1:9 could not read" in str(info.value)
    assert "nothing was promoted" in str(info.value)
    with pytest.raises(RegistryUnavailable):
        load_model(down, CHAMPION)
