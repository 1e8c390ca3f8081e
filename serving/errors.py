"""Errors of the scoring service; each maps to one HTTP status and says what to do next."""

from __future__ import annotations

from infra.errors import CRMError


class ServingError(CRMError):
    """Base of every error raised by `serving` (status: the HTTP status it is answered with)."""

    status: int = 500


class OpportunityNotFound(ServingError):
    """The id is not in the online store (never landed, or not materialised yet)."""

    status = 404


class OpportunityClosed(ServingError):
    """The deal is already Won or Lost: there is nothing left to predict."""

    status = 404


class InvalidFeatures(ServingError):
    """What-if feature values that the model cannot take (unknown name, wrong type or level)."""

    status = 422

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class StoreUnavailable(ServingError):
    """The online store could not be read; the next request tries again (no restart needed)."""

    status = 503


class NotReady(ServingError):
    """The model or the feature store is not loaded yet (the reason says which and why)."""

    status = 503


class ModelMismatch(ServingError):
    """The champion wants features this service cannot read from the feature service."""

    status = 503
