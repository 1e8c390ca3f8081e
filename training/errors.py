"""Errors of the training step; each message says what happened and what to do next."""

from __future__ import annotations

from infra.errors import CRMError


class TrainingError(CRMError):
    """Base of every error raised by `training`."""


class ExamplesError(TrainingError):
    """Training examples could not be built or are unusable (missing data, wrong columns)."""


class LeakageError(TrainingError):
    """A feature carries the outcome: refused before any model is fitted."""


class RegistryError(TrainingError):
    """The MLflow model registry could not be read or updated."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer, or answered with a server error.

    Not retried by the task: MLflow's HTTP client already tried it again with its own budget
    (`Settings.mlflow_request_retries`), the one retry layer for MLflow calls.
    """
