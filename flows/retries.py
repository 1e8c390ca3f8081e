"""Which failures a task may retry: only transient ones, never a user's mistake.

The retry budget of an operation lives in one layer. Object-store calls are retried by the lake
itself (`infra.lake.ATTEMPTS`) and surface as a `LakeError`; every other `CRMError` is a mistake
in the input or the set-up that fails the same way every time (a bad CSV, a missing snapshot,
no Kaggle credentials, a failed quality gate). So a task retries an exception only when it is
an outage outside the lake — a refused connection, a timeout, a database that went away — or a
`CRMError` that declares itself `transient`.
"""

from __future__ import annotations

from typing import Any

from psycopg import OperationalError as PsycopgOperationalError
from sqlalchemy.exc import InterfaceError, OperationalError

from infra.errors import CRMError

# Retries of a task that talks to a database or a server (Feast's online store, MLflow).
TRANSIENT_RETRIES = 2
TRANSIENT_RETRY_DELAY_S = 10

_OUTAGES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    PsycopgOperationalError,
    OperationalError,
    InterfaceError,
)


def is_transient(exc: BaseException | None) -> bool:
    """True if trying the same call again may succeed."""
    if exc is None:
        return False
    if isinstance(exc, CRMError):
        return exc.transient
    return isinstance(exc, _OUTAGES)


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry the task only if its exception is transient."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return is_transient(exc)
