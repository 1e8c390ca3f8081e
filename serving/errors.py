"""Errors of the scoring service; each maps to one HTTP status and says what to do next."""

from __future__ import annotations

from typing import ClassVar

from infra.errors import CRMError


class ServingError(CRMError):
    """Base of every error raised by `serving` (status: the HTTP status it is answered with)."""

    status: ClassVar[int] = 500

    def __init_subclass__(cls, status: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status


class OpportunityNotFound(ServingError, status=404):
    """The id is not in the online store (never landed, or not materialised yet)."""


class OpportunityClosed(ServingError, status=404):
    """The deal is already Won or Lost: there is nothing left to predict."""


class InvalidFeatures(ServingError, status=422):
    """What-if feature values that the model cannot take (unknown name, wrong type or level)."""

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class Overloaded(ServingError, status=429):
    """More scoring requests are in flight than `CRM_SERVING_QUEUE_LIMIT`: retry after a moment."""


class BodyTooLarge(ServingError, status=413):
    """The request body is larger than `CRM_SERVING_MAX_BODY_BYTES`."""


class StoreUnavailable(ServingError, status=503):
    """The online store could not be read; the next request tries again (no restart needed)."""


class NotReady(ServingError, status=503):
    """The model or the feature store is not loaded yet (the reason says which and why)."""


class ModelMismatch(ServingError, status=503):
    """The champion wants features this service cannot read from the feature service."""


class EdgeError(CRMError):
    """The edge (nginx in front of the scorer) could not start: the message says what to do."""
