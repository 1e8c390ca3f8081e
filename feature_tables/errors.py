"""The one exception family of the feature tables stage."""

from __future__ import annotations

from infra.errors import CRMError


class FeatureTablesError(CRMError):
    """Feature tables could not be built, written or served; the message says what to do."""
