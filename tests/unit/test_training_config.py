"""A training run's configuration is one frozen value, checked when it is made."""

from __future__ import annotations

import dataclasses

import pytest

from training.config import TrainingConfig
from training.errors import TrainingError


def test_defaults_and_frozen() -> None:
    config = TrainingConfig()
    assert (config.search_size, config.seed, config.step_days) == (8, 42, 30)
    assert config.track and config.register_model and config.n_jobs == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 7  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search_size": 0}, "search_size must be at least 1"),
        ({"test_fraction": 0.0}, "must each lie strictly between 0 and 1"),
        ({"test_fraction": 0.5, "valid_fraction": 0.5}, "must leave data to train on"),
        ({"step_days": 0}, "step_days must be at least 1"),
        ({"n_jobs": 0}, "n_jobs must be at least 1"),
        ({"max_examples": 999}, "max_examples must be at least 1000"),
    ],
)
def test_invalid_values_are_refused_with_what_is_wrong(changes: dict, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        TrainingConfig(**changes)


def test_engagement_only_examples_are_allowed() -> None:
    assert TrainingConfig(step_days=None).step_days is None
