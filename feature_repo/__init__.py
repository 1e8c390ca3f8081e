"""Feast definitions of the CRM feature store (one set for every profile).

`feast -f feature_repo/<profile>/feature_store.yaml apply` run from the project root scans the
root (Feast's repo path is the working directory); the root `.feastignore` keeps everything but
this folder out, so modules here are imported as `feature_repo.<module>`.
"""

import infra.feast_import  # noqa: F401  # before Feast: its import-time type checks off
