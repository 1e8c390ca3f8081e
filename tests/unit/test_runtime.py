"""Process set-up: the profile's environment, and Prefect's run logs kept to one line."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from infra.errors import CRMError
from infra.runtime import PREFECT_RUN_LOGGERS, prepare_process, quiet_user_errors
from tests.support.settings import make


def test_the_profile_replaces_what_another_instance_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")  # another stack's
    settings = make(profile="stack", s3_endpoint_url="http://127.0.0.1:28333")
    prepare_process(settings)
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:28333"
    assert os.environ["MLFLOW_TRACKING_URI"] == settings.tracking_uri


def _record(logger: str, level: int, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(logger, level, __file__, 1, "Task run failed", None, exc_info)


@pytest.fixture
def clean_filters() -> Iterator[None]:
    saved = {name: list(logging.getLogger(name).filters) for name in PREFECT_RUN_LOGGERS}
    yield
    for name, filters in saved.items():
        logging.getLogger(name).filters = filters


def test_a_user_error_loses_its_traceback_in_run_logs(clean_filters: None) -> None:
    quiet_user_errors()
    logger = logging.getLogger("prefect.task_runs")
    user = _record(logger.name, logging.ERROR, CRMError("No validated snapshot: run crm land"))
    bug = _record(logger.name, logging.ERROR, KeyError("x"))
    assert all(f.filter(user) for f in logger.filters) and user.exc_info is None
    assert all(f.filter(bug) for f in logger.filters) and bug.exc_info is not None


def test_the_cli_drops_error_records_and_a_flow_does_not_undo_it(clean_filters: None) -> None:
    quiet_user_errors(cli=True)
    quiet_user_errors()  # the flow's own call, later in the same process
    logger = logging.getLogger("prefect.flow_runs")
    error = _record(logger.name, logging.ERROR, CRMError("bad"))
    warning = _record(logger.name, logging.WARNING, None)
    assert not all(f.filter(error) for f in logger.filters)
    assert all(f.filter(warning) for f in logger.filters)
