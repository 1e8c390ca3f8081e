"""DuckDB connections that can read the lake, on disk or over S3.

DuckDB cannot download extensions on machines without internet access, so httpfs is installed from
the `duckdb-extension-httpfs` wheel's bundled file. Feast 0.67's DuckDB offline store ignores
`s3_endpoint_override`, so the S3 endpoint is given to DuckDB as a secret before anything reads.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from infra.errors import CRMError
from infra.settings import Settings


class DuckDBSetupError(CRMError):
    """DuckDB could not be prepared to read the lake."""


def httpfs_extension_path() -> Path:
    import duckdb_extension_httpfs

    package = Path(duckdb_extension_httpfs.__file__).parent
    found = sorted(package.glob(f"extensions/v{duckdb.__version__}/httpfs.duckdb_extension"))
    if not found:
        raise DuckDBSetupError(
            f"No httpfs extension for DuckDB {duckdb.__version__} under {package}: install "
            f"duckdb-extension-httpfs=={duckdb.__version__} (`uv sync --frozen`)."
        )
    return found[0]


def s3_secret_sql(settings: Settings, name: str = "crm_lake", *, persistent: bool = False) -> str:
    """`CREATE SECRET` statement pointing DuckDB's S3 client at the configured endpoint."""
    parts = [
        "TYPE s3",
        f"KEY_ID '{settings.secret('s3_access_key_id')}'",
        f"SECRET '{settings.secret('s3_secret_access_key')}'",
        f"REGION '{settings.s3_region}'",
    ]
    if settings.s3_endpoint_host:
        parts += [
            f"ENDPOINT '{settings.s3_endpoint_host}'",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if settings.s3_ssl else 'false'}",
        ]
    if persistent:
        parts.append(f"SCOPE 's3://{settings.lake_bucket}'")
    kind = "PERSISTENT SECRET" if persistent else "SECRET"
    return f"CREATE OR REPLACE {kind} {name} ({', '.join(parts)})"


def enable_s3(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load httpfs from the bundled file and register the lake's S3 secret on `con`."""
    con.execute(f"INSTALL '{httpfs_extension_path()}'")
    con.execute("LOAD httpfs")
    con.execute(s3_secret_sql(settings))


def persist_s3_setup(settings: Settings) -> None:
    """Let *any* DuckDB of this user read the lake, including the one inside the `feast` CLI.

    Installs httpfs into DuckDB's extension folder (so it autoloads on `s3://` paths) and stores
    the lake's S3 secret persistently (`~/.duckdb/stored_secrets`, scoped to the lake bucket).
    `crm stack up` and `crm env` call it; in-process code uses `enable_s3` instead.
    """
    con = duckdb.connect()
    try:
        con.execute(f"INSTALL '{httpfs_extension_path()}'")
        con.execute(s3_secret_sql(settings, name="crm_lake_persistent", persistent=True))
    finally:
        con.close()


def connect(settings: Settings, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database)
    if settings.uses_s3:
        enable_s3(con, settings)
    return con
