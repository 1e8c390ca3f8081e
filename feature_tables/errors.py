"""The one exception family of the feature tables stage."""

from __future__ import annotations


class FeatureTablesError(RuntimeError):
    """Feature tables could not be built, written or served; the message says what to do."""
