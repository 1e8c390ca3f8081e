"""Errors of the validation stage: one base class, messages that say what to do next."""

from __future__ import annotations

from infra.errors import CRMError


class ValidationError(CRMError):
    """Validation could not run or its outputs are missing; the message says what to run."""


class SnapshotNotLandedError(ValidationError):
    """The snapshot to validate has no raw manifest (it was never landed, or landing failed)."""


class NotValidatedError(ValidationError):
    """A caller asked for validated data that was never published."""


class ValidationGateError(ValidationError):
    """The snapshot failed the quality gate; nothing downstream may run on it."""
