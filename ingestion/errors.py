"""Errors of the ingestion package.

`SourceError` is the package's one base exception, so a caller (the CLI, a flow) can catch every
ingestion failure with one clause. Messages name the file or snapshot, the problem and what to do.
"""

from __future__ import annotations

from infra.errors import CRMError


class SourceError(CRMError):
    """Data could not be read from a source or landed; the message says what to do."""


class LandingError(SourceError):
    """A snapshot could not be landed or read back from the lake."""


class SourceUnavailable(SourceError):
    """A remote source could not be reached (a download cut short): worth trying again."""

    transient = True
