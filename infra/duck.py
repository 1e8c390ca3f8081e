"""DuckDB connections that can read the lake, on disk or over S3.

DuckDB cannot download extensions on machines without internet access, so httpfs is installed from
the `duckdb-extension-httpfs` wheel's bundled file. Feast 0.67's DuckDB offline store ignores
`s3_endpoint_override`, so the S3 endpoint is given to DuckDB as a secret before anything reads.

Secrets stay in the process. DuckDB also loads *persistent* secrets (`~/.duckdb/stored_secrets`)
and prefers one whose scope matches a path over an unscoped one, so a secret another instance
stored for `s3://data-lake` would send this process's reads to that instance's S3 server. Every
connection opened here therefore refuses persistent secrets (`allow_persistent_secrets=false`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from infra.errors import CRMError
from infra.settings import Profile, Settings

# The configuration of every DuckDB connection the code opens.
IN_PROCESS_CONFIG: dict[str, Any] = {"allow_persistent_secrets": False}
# The secret `crm env` stored before it held only the path style (keys and endpoint in plain
# text, able to capture another instance's reads): removed wherever it is found.
LEGACY_PERSISTENT_SECRET = "crm_lake_persistent"  # nosec B105  # a secret's name, not a secret


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


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal (a quote in a key cannot end the statement)."""
    return "'" + value.replace("'", "''") + "'"


def s3_secret_sql(settings: Settings, name: str = "crm_lake") -> str:
    """`CREATE SECRET` (temporary, this connection's only) for the configured endpoint."""
    parts = [
        "TYPE s3",
        f"KEY_ID {sql_literal(settings.secret('s3_access_key_id'))}",
        f"SECRET {sql_literal(settings.secret('s3_secret_access_key'))}",
        f"REGION {sql_literal(settings.s3_region)}",
    ]
    if settings.s3_endpoint_host:
        parts += [
            f"ENDPOINT {sql_literal(settings.s3_endpoint_host)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if settings.s3_ssl else 'false'}",
        ]
    return f"CREATE OR REPLACE SECRET {name} ({', '.join(parts)})"


def enable_s3(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Load httpfs from the bundled file and register the lake's S3 secret on `con`."""
    con.execute(f"INSTALL {sql_literal(str(httpfs_extension_path()))}")
    con.execute("LOAD httpfs")
    con.execute(s3_secret_sql(settings))


def path_style_secret_name(settings: Settings) -> str:
    return "crm_path_style_" + re.sub(r"[^a-z0-9_]", "_", settings.lake_bucket.lower())


def persist_s3_setup(settings: Settings) -> str | None:
    """Let the `feast` CLI's DuckDB read the local stack's lake; the secret stored, if any.

    That DuckDB is not ours to configure: it reads `DUCKDB_S3_ENDPOINT`, `DUCKDB_S3_USE_SSL` and
    the `AWS_*` keys from the environment `crm env` exports, but has no variable for the URL
    style, and SeaweedFS needs path-style URLs. So this installs httpfs into DuckDB's extension
    folder (it autoloads on `s3://` paths) and stores one persistent secret, scoped to the lake
    bucket, that says *only* `URL_STYLE 'path'`: no endpoint and no key, which DuckDB then takes
    from the shell's environment. The secret cannot send a shell's reads to another instance's
    S3 server, and no credential is written to disk.

    Only for the stack profile: prod's DuckDB uses AWS's default URL style and takes its keys
    from the environment (or AWS's credential chain) too, so nothing is stored for it.
    """
    if settings.profile is not Profile.STACK or not settings.s3_endpoint_host:
        return None
    name = path_style_secret_name(settings)
    con = duckdb.connect()  # persistent secrets allowed: storing one is the point
    try:
        con.execute(f"INSTALL {sql_literal(str(httpfs_extension_path()))}")
        con.execute("LOAD httpfs")
        con.execute(f"DROP PERSISTENT SECRET IF EXISTS {LEGACY_PERSISTENT_SECRET}")
        scope = sql_literal(f"s3://{settings.lake_bucket}")
        con.execute(
            f"CREATE OR REPLACE PERSISTENT SECRET {name} (TYPE s3, URL_STYLE 'path', SCOPE {scope})"
        )
    finally:
        con.close()
    return name


def new_connection(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that ignores every persistent secret."""
    return duckdb.connect(database, config=IN_PROCESS_CONFIG)


def connect(settings: Settings, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = new_connection(database)
    if settings.uses_s3:
        enable_s3(con, settings)
    return con
