"""The explorer's one exception family: every message names what is missing and how to fix it."""

from __future__ import annotations

from infra.errors import CRMError


class ExplorerError(CRMError):
    """Base of the explorer's errors; pages show the message instead of a traceback."""


class ServiceDown(ExplorerError):
    """A service the page needs (scorer, MLflow server, feature store) is not reachable."""


class NoData(ExplorerError):
    """The service is fine but the pipeline has not produced what the page shows yet."""
