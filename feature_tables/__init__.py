"""Point-in-time entity feature tables (DuckDB) and the Feast store that serves them."""

from feature_tables.compute import (
    GLOBAL_PRIOR,
    PROFILE_TIMESTAMP,
    SMOOTHING_K,
    VIEWS,
    compute_feature_tables,
    feature_key,
    write_feature_tables,
)
from feature_tables.errors import FeatureTablesError

__all__ = [
    "GLOBAL_PRIOR",
    "PROFILE_TIMESTAMP",
    "SMOOTHING_K",
    "VIEWS",
    "FeatureTablesError",
    "compute_feature_tables",
    "feature_key",
    "write_feature_tables",
]
