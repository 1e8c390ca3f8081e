"""Errors of monitoring; each message says what happened and what to do next."""

from __future__ import annotations

from infra.errors import CRMError


class MonitoringError(CRMError):
    """Base of every error raised by `monitoring`."""


class NoReferenceError(MonitoringError):
    """The champion has no training reference to compare against (trained before monitoring)."""
