"""The promotion gate, both ways, on a real (SQLite) MLflow tracking store and registry."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from rich.console import Console

from feature_repo.feature_services import SCORING_SERVICE
from infra.settings import Settings
from tests.support.training_data import generator_examples, scrambled_history
from training.config import TrainingConfig
from training.features import LABEL
from training.metrics import probability_metrics
from training.registry import CHALLENGER, CHAMPION, alias_version, compare, load_model
from training.run import train
from training.split import time_split
from training.summary import print_summary


def test_gate_needs_both_higher_auc_and_lower_brier() -> None:
    champion = {"auc": 0.75, "brier": 0.20}
    assert compare({"auc": 0.76, "brier": 0.19}, champion)[0]
    promoted, reason = compare({"auc": 0.76, "brier": 0.21}, champion)
    assert not promoted and "Brier not lower" in reason
    promoted, reason = compare({"auc": 0.75, "brier": 0.19}, champion)
    assert not promoted and "AUC not higher" in reason


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return generator_examples(6000, seed=21)


def test_first_model_is_champion_then_the_gate_works_both_ways(
    examples: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = Settings(home=Path(tmp_path_factory.mktemp("mlflow-home")))
    weak = scrambled_history(examples)
    config = TrainingConfig(search_size=2)

    first = train(settings, config, examples=weak)
    assert first.decision is not None and first.decision.promoted
    assert first.decision.reason == "first model: no champion yet"
    assert alias_version(settings, CHAMPION) == first.model_version == "1"

    better = train(settings, config, examples=examples)
    assert better.decision is not None and better.decision.promoted, better.decision
    assert better.decision.champion_version == "1"
    assert better.metrics["xgboost"]["auc"] > better.decision.champion_auc
    assert alias_version(settings, CHAMPION) == "2"

    worse = train(settings, config, examples=weak)
    assert worse.decision is not None and not worse.decision.promoted
    assert "champion kept" in worse.decision.reason
    assert alias_version(settings, CHAMPION) == "2"
    assert alias_version(settings, CHALLENGER) == "3"

    summary = json.loads(json.dumps(worse.to_dict()))  # what `crm train --json` prints
    assert summary["decision"]["promoted"] is False and summary["model_version"] == "3"
    assert set(summary["metrics"]) == {"baseline", "xgboost", "oracle"}

    # what `crm train` shows for it, rendered from that JSON alone
    console = Console(record=True, width=120)
    print_summary(summary, console)
    shown = console.export_text()
    assert "v3 not promoted: champion kept" in shown and f"MLflow run {worse.run_id}" in shown

    # the run recorded what it must: metrics, lineage, plots and the decision
    run = mlflow.get_run(worse.run_id)
    assert run.data.tags["promoted"] == "False"
    assert run.data.params["lineage_feature_service"] == SCORING_SERVICE
    assert run.data.params["config_search_size"] == "2" and run.data.params["config_seed"] == "42"
    assert "xgboost_test_auc" in run.data.metrics and "wall_time_s" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(worse.run_id, "plots")}
    assert artifacts == {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"}

    # the registered champion scores exactly like the model that was trained
    champion = load_model(settings, CHAMPION)
    test = time_split(examples).test
    rescored = probability_metrics(test[LABEL].to_numpy(), champion.predict_proba(test))
    assert rescored["auc"] == pytest.approx(better.metrics["xgboost"]["auc"], abs=1e-9)
    assert rescored["brier"] == pytest.approx(better.metrics["xgboost"]["brier"], abs=1e-9)
