"""Prefect flow `train`: Feast examples of a validated snapshot -> models -> MLflow -> gate."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from infra.settings import get_settings
from training.run import print_summary
from training.run import train as run_training


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def train_and_register(snapshot: str | None, search_size: int, seed: int) -> dict[str, Any]:
    """Train, log to MLflow and apply the promotion gate; the summary is the task's result."""
    report = run_training(get_settings(), snapshot=snapshot, search_size=search_size, seed=seed)
    print_summary(report)
    return report.to_dict()


@flow(name="train")
def train(snapshot: str | None = None, search_size: int = 8, seed: int = 42) -> dict[str, Any]:
    """Train on `snapshot` (the latest validated one by default); returns the training report."""
    return train_and_register(snapshot, search_size, seed)
