"""Process set-up shared by the CLI, the flows' entry points and the services.

Called explicitly at start-up (never at import time): it exports the active profile's endpoints
so in-process libraries that read the environment (Prefect, boto3, pyarrow, MLflow) agree with
the settings object.
"""

from __future__ import annotations

import logging
import os
import warnings

from infra.errors import CRMError
from infra.settings import Profile, Settings

# The loggers Prefect reports task and flow run failures on.
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


def prepare_process(settings: Settings) -> None:
    """Export the profile's environment, replacing what the shell had for the same names.

    The settings are the one source of truth (a user overrides them with `CRM_*` or `.env`): an
    `AWS_ENDPOINT_URL` or `MLFLOW_TRACKING_URI` left in the shell by another instance's
    `eval "$(crm env)"` must not send this process to that instance.
    """
    os.environ.update(settings.env_exports())
    # A library's deprecation notice (ibis, about DuckDB) is not something a user can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis(\.|$)")
    # urllib3 logs each retry of MLflow's HTTP client (CRM_MLFLOW_REQUEST_RETRIES) as a warning;
    # the error that ends the run, if they all fail, already says what happened and what to do.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if settings.profile is Profile.LOCAL:
        # Ephemeral Prefect keeps its SQLite database with the rest of the local state.
        prefect_home = (settings.home / "prefect").resolve()
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(prefect_home))
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
        # The first start migrates a new SQLite database: slower than Prefect's 20 s default
        # on a busy 2-core machine.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


class _UserErrorFilter(logging.Filter):
    """Keeps a `CRMError`'s traceback out of the run logs: its message already says what to do.

    With `drop_errors` (the `crm` CLI) the error records are dropped altogether: the CLI prints
    the error that ended the run once, itself. Warnings (a retry, say) still show.
    """

    def __init__(self, drop_errors: bool) -> None:
        super().__init__()
        self.drop_errors = drop_errors

    def filter(self, record: logging.LogRecord) -> bool:
        if self.drop_errors and record.levelno >= logging.ERROR:
            return False
        if record.exc_info and isinstance(record.exc_info[1], CRMError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_errors(*, cli: bool = False) -> None:
    """Install the filter on Prefect's run loggers.

    Flows call it with `cli=False` (a worker's logs keep the one-line error); the `crm` CLI
    calls it first with `cli=True`, and a flow's later call leaves the CLI's filter in place.
    """
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        existing = [f for f in logger.filters if isinstance(f, _UserErrorFilter)]
        if existing and not cli:
            continue
        for old in existing:
            logger.removeFilter(old)
        logger.addFilter(_UserErrorFilter(drop_errors=cli))
