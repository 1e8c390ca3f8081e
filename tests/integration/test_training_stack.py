"""The promotion gate on the real MLflow server (PostgreSQL + S3 artifacts): no skill is not
promoted, skill is, and the same model again keeps the champion."""

from __future__ import annotations

import boto3
import mlflow

from infra.runtime import prepare_process
from infra.settings import Settings
from tests.support.training_data import generator_examples, scrambled_history
from training.config import TrainingConfig
from training.registry import CHALLENGER, CHAMPION, alias_version, load_model
from training.run import train


def test_gate_on_the_mlflow_server(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"model_name": "crm-gate-test"})
    prepare_process(settings)
    examples = generator_examples(6000, seed=21)
    weak = scrambled_history(examples)
    config = TrainingConfig(search_size=2)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient()
    if client.search_registered_models(f"name = '{settings.model_name}'"):
        client.delete_registered_model(settings.model_name)  # a rerun starts from no champion

    # The server's answer for a model that does not exist is "no champion", not an error.
    missing = settings.model_copy(update={"model_name": "crm-no-such-model"})
    assert alias_version(missing, CHAMPION) is None

    noise = train(settings, config, examples=weak)  # no skill: registered, not champion
    assert noise.decision is not None and not noise.decision.promoted
    assert noise.decision.outcome == "no_skill", noise.decision.reason
    assert alias_version(settings, CHAMPION) is None
    assert alias_version(settings, CHALLENGER) == noise.model_version

    better = train(settings, config, examples=examples)
    assert better.decision is not None and better.decision.promoted, better.decision
    assert better.decision.outcome == "first_champion"
    assert alias_version(settings, CHAMPION) == better.model_version

    again = train(settings, config, examples=examples)  # same model: no paired improvement
    assert again.decision is not None and not again.decision.promoted
    assert again.decision.outcome == "champion_kept", again.decision.reason
    assert alias_version(settings, CHAMPION) == better.model_version
    assert alias_version(settings, CHALLENGER) == again.model_version

    # the server stored the run in PostgreSQL and the model's files in the S3 bucket
    assert settings.tracking_uri.startswith("http://")
    champion = load_model(settings, CHAMPION)
    assert champion is not None
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.secret("s3_access_key_id"),
        aws_secret_access_key=settings.secret("s3_secret_access_key"),
        region_name=settings.s3_region,
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow-artifacts").get("Contents", [])]
    assert any(better.run_id in key for key in keys) or any("models/" in k for k in keys), keys[:20]
