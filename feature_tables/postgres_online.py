"""Feast's PostgreSQL online store with a bulk write path: COPY into a staging table, one upsert.

Feast 0.67 writes a materialisation batch with `executemany` of a one-row
`INSERT ... ON CONFLICT`: about 32k feature rows/s here, so a million opportunities took minutes.
This subclass keeps everything else of Feast's store (tables, reads, `feast apply`, teardown)
and changes only `online_write_batch`: the same rows (same entity-key serialisation, same value
protos, `value_text`/`value_num`, timestamps) are streamed with COPY into a temporary table and
merged with a single `INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO UPDATE`, so what
`get_online_features` reads is what Feast's own write would have left.

feature_store.yaml selects it by class path:
    online_store:
      type: feature_tables.postgres_online.PostgreSQLOnlineStore
The class keeps Feast's name: code that recognises Feast's PostgreSQL store by name (the
scorer's own reader with timeouts, serving.online) treats this one the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, Literal

from feast import FeatureView
from feast.infra.key_encoding_utils import get_list_val_str, serialize_entity_key
from feast.infra.online_stores.helpers import _to_naive_utc, extract_text_and_num
from feast.infra.online_stores.postgres_online_store import postgres as feast_postgres
from feast.infra.utils.postgres.connection_utils import _get_conn, _get_connection_pool
from feast.infra.utils.postgres.postgres_config import ConnectionType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from psycopg import Connection, sql

STORE_TYPE = f"{__name__}.PostgreSQLOnlineStore"
STAGING_TABLE = "crm_online_write_staging"
KEY_COLUMNS = ("entity_key", "feature_name")


class PostgreSQLOnlineStoreConfig(feast_postgres.PostgreSQLOnlineStoreConfig):
    """Feast's PostgreSQL online store settings; only the `type` names this class."""

    type: Literal["feature_tables.postgres_online.PostgreSQLOnlineStore"] = (
        "feature_tables.postgres_online.PostgreSQLOnlineStore"  # type: ignore[assignment]
    )


class PostgreSQLOnlineStore(feast_postgres.PostgreSQLOnlineStore):
    """Feast's store; materialisation batches are written with COPY and one upsert."""

    @contextlib.contextmanager
    def _get_conn(
        self, config: RepoConfig, autocommit: bool = False
    ) -> Generator[Connection[Any], Any, Any]:
        """Feast's connection handling, without its check that `type` is the string "postgres"."""
        online = config.online_store
        if online.conn_type == ConnectionType.pool:
            if not self._conn_pool:
                self._conn_pool = _get_connection_pool(online)
                self._conn_pool.open()
            connection = self._conn_pool.getconn()
            connection.set_autocommit(autocommit)
            yield connection
            self._conn_pool.putconn(connection)
        else:
            if not self._conn:
                self._conn = _get_conn(online)
            self._conn.set_autocommit(autocommit)
            yield self._conn

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        table_name = feast_postgres._table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        with self._get_conn(config) as conn, conn.cursor() as cur:
            with_value_num = self._check_table_has_value_num(cur, table_name, config)
            columns = ["entity_key", "feature_name", "value", "value_text"]
            columns += ["value_num"] if with_value_num else []
            columns += ["vector_value", "event_ts", "created_ts"]
            compute_num = with_value_num  # as Feast computes it
            staging, target = sql.Identifier(STAGING_TABLE), sql.Identifier(table_name)
            names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            cur.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DROP").format(
                    staging, target
                )
            )
            version = config.entity_key_serialization_version
            keys = [
                serialize_entity_key(k, entity_key_serialization_version=version) for k, *_ in data
            ]
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, names)) as copy:
                for row in _rows(config, keys, data, with_value_num, compute_num):
                    copy.write_row(row)
            updates = sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                for c in columns
                if c not in KEY_COLUMNS
            )
            # One statement cannot upsert a key twice: if an entity comes more than once (never
            # from Feast's materialisation, which keeps an entity's newest row), the newest row
            # of a key wins; otherwise the rows go in as they are, without a sort.
            select = sql.SQL("SELECT {names} FROM {staging}")
            if len(set(keys)) < len(keys):
                select = sql.SQL(
                    "SELECT DISTINCT ON (entity_key, feature_name) {names} FROM {staging} "
                    "ORDER BY entity_key, feature_name, event_ts DESC, created_ts DESC NULLS LAST"
                )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {target} ({names}) {select} "
                    "ON CONFLICT (entity_key, feature_name) DO UPDATE SET {updates}"
                ).format(
                    target=target,
                    names=names,
                    select=select.format(names=names, staging=staging),
                    updates=updates,
                )
            )
            conn.commit()
        if progress:
            progress(len(data))


def _rows(
    config: RepoConfig,
    keys: list[bytes],
    data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
    with_value_num: bool,
    compute_num: bool,
) -> Generator[tuple[Any, ...], None, None]:
    """The rows Feast's `online_write_batch` would insert, column for column (`keys`: the
    serialised entity keys of `data`)."""
    vectors = bool(config.online_store.vector_enabled)
    for key, (_, values, timestamp, created) in zip(keys, data, strict=True):
        event_ts = _to_naive_utc(timestamp)
        created_ts = _to_naive_utc(created) if created is not None else None
        for feature_name, value in values.items():
            value_text, value_num = extract_text_and_num(value, compute_num)
            row: list[Any] = [key, feature_name, value.SerializeToString(), value_text]
            if with_value_num:
                row.append(value_num)
            row += [get_list_val_str(value) if vectors else None, event_ts, created_ts]
            yield tuple(row)
