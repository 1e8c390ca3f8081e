"""Point-in-time entity feature tables (DuckDB) and the Feast store that serves them."""

import infra.feast_import  # noqa: F401  # before Feast: its import-time type checks off
