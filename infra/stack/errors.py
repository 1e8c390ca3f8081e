"""The local stack's one error, shared by its catalogue, provisioning and supervisor."""

from __future__ import annotations

from infra.errors import CRMError


class StackError(CRMError):
    """A service of the local stack could not be started, checked or stopped."""
