"""Point-in-time entity feature tables (DuckDB) and the Feast store that serves them."""
