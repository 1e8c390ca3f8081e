"""How one training run is done: a frozen value passed once, from the flow down to the models."""

from __future__ import annotations

from dataclasses import dataclass

from training.errors import TrainingError
from training.examples import MAX_EXAMPLES, STEP_DAYS


@dataclass(frozen=True)
class TrainingConfig:
    """Everything `training.run.train` needs besides the settings and the data.

    `step_days`: as-of examples every that many days while a deal is open (None: at engagement
    only); used when the examples are built from Feast. `track=False` writes nothing to MLflow and
    so registers nothing; `register_model=False` logs the run and the model but leaves the
    registry alone. `n_jobs` caps XGBoost's and the BLAS/OpenMP threads. `max_examples`: above
    this many examples, whole opportunities are sampled (seeded) down to about that many before
    the split, so training time and memory stop growing with the data (None: use every example).
    """

    search_size: int = 8
    seed: int = 42
    test_fraction: float = 0.2
    valid_fraction: float = 0.15
    step_days: int | None = STEP_DAYS
    track: bool = True
    register_model: bool = True
    n_jobs: int = 1
    max_examples: int | None = MAX_EXAMPLES

    def __post_init__(self) -> None:
        problems = []
        if self.search_size < 1:
            problems.append(f"search_size must be at least 1, got {self.search_size}")
        if not 0 < self.test_fraction < 1 or not 0 < self.valid_fraction < 1:
            problems.append(
                f"test_fraction ({self.test_fraction}) and valid_fraction "
                f"({self.valid_fraction}) must each lie strictly between 0 and 1"
            )
        elif self.test_fraction + self.valid_fraction >= 1:
            problems.append(
                f"test_fraction + valid_fraction must leave data to train on, got "
                f"{self.test_fraction} + {self.valid_fraction}"
            )
        if self.step_days is not None and self.step_days < 1:
            problems.append(f"step_days must be at least 1 (or None), got {self.step_days}")
        if self.max_examples is not None and self.max_examples < 1_000:
            problems.append(
                f"max_examples must be at least 1000 (or None), got {self.max_examples}"
            )
        if self.n_jobs < 1:
            problems.append(f"n_jobs must be at least 1, got {self.n_jobs}")
        if problems:
            raise TrainingError(f"Invalid training configuration: {'; '.join(problems)}.")
