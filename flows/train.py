"""Prefect flow `train`: Feast examples of a validated snapshot -> models -> MLflow -> gate.

The flow returns the training report's JSON-able summary and prints nothing; `crm train` renders
it with `training.summary.print_summary`. A model the gate does not promote (no skill over the
base rate, or no paired improvement over the champion) is not a failure: the run completes, in a
state named "Not promoted" whose message is the gate's reason.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from flows.retries import TRANSIENT_RETRIES, TRANSIENT_RETRY_DELAY_S, transient_only
from infra.runtime import quiet_user_errors
from infra.settings import get_settings
from training.config import TrainingConfig
from training.run import train as run_training

NOT_PROMOTED = "Not promoted"


def completed(summary: dict[str, Any], name: str, message: str) -> dict[str, Any]:
    """End the calling flow in a Completed state called `name` with `message`.

    A Prefect flow that returns a state finishes in that state, and whoever called it still
    receives `summary` (the state's data); hence the cast.
    """
    return cast(dict[str, Any], Completed(data=summary, name=name, message=message))


# MLflow and Feast's stores are servers: retried on an outage, never on a user's mistake.
@task(
    retries=TRANSIENT_RETRIES,
    retry_delay_seconds=TRANSIENT_RETRY_DELAY_S,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def train_and_register(snapshot: str | None, config: TrainingConfig) -> dict[str, Any]:
    """Train, log to MLflow and apply the promotion gate; the report's summary is the result."""
    return run_training(get_settings(), config, snapshot=snapshot).to_dict()


@flow(name="train")
def train(
    snapshot: str | None = None,
    search_size: int = TrainingConfig.search_size,
    seed: int = TrainingConfig.seed,
) -> dict[str, Any]:
    """Train on `snapshot` (the latest validated one by default); returns the training report."""
    quiet_user_errors()
    summary = train_and_register(snapshot, TrainingConfig(search_size=search_size, seed=seed))
    decision = summary.get("decision")
    if decision and not decision["promoted"]:
        get_run_logger().warning("v%s not promoted: %s", decision["version"], decision["reason"])
        return completed(summary, NOT_PROMOTED, decision["reason"])
    return summary
