"""Process set-up shared by the CLI, the flows' entry points and the services.

Called explicitly at start-up (never at import time): it exports the active profile's endpoints
so in-process libraries that read the environment (Prefect, boto3, pyarrow, MLflow) agree with
the settings object.
"""

from __future__ import annotations

import os

from infra.settings import Profile, Settings


def prepare_process(settings: Settings) -> None:
    """Export the profile's environment; values the user already exported win."""
    for name, value in settings.env_exports().items():
        os.environ.setdefault(name, value)
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
