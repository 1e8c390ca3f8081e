"""Feast's PostgreSQL online store with a bulk write path: COPY into a staging table, one upsert.

Feast 0.67 writes a materialisation batch with `executemany` of a one-row
`INSERT ... ON CONFLICT`: about 32k feature rows/s here, so a million opportunities took minutes.
This subclass keeps everything else of Feast's store (tables, reads, `feast apply`, teardown)
and changes only `online_write_batch`: the same rows (same entity-key serialisation, same value
protos, `value_text`/`value_num`, timestamps) are streamed with COPY into a temporary table and
merged with a single `INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO UPDATE`, so what
`get_online_features` reads is what Feast's own write would have left.

It adds `online_write_arrow`, which `feature_tables.bulk_engine` calls instead of Feast's
per-row conversion + `online_write_batch`: the same bytes, built by column from the plan's
Arrow table (`feature_tables.online_rows`), sorted by key, written by the same COPY and upsert
(docs/scale.md).

feature_store.yaml selects it by class path:
    online_store:
      type: feature_tables.postgres_online.PostgreSQLOnlineStore
The class keeps Feast's name: code that recognises Feast's PostgreSQL store by name (the
scorer's own reader with timeouts, serving.online) treats this one the same.
"""

from __future__ import annotations

import contextlib
import io
import queue
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from feast import FeatureView
from feast.data_source import DataSource
from feast.infra.key_encoding_utils import get_list_val_str, serialize_entity_key
from feast.infra.online_stores.helpers import _to_naive_utc, extract_text_and_num
from feast.infra.online_stores.postgres_online_store import postgres as feast_postgres
from feast.infra.utils.postgres.connection_utils import _get_conn, _get_connection_pool
from feast.infra.utils.postgres.postgres_config import ConnectionType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from psycopg import Connection, Cursor, sql

from feature_tables import online_rows

STORE_TYPE = f"{__name__}.PostgreSQLOnlineStore"
STAGING_TABLE = "crm_online_write_staging"
_STAGING = sql.Identifier(STAGING_TABLE)
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
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k, *_ in data]

        def copy_rows(
            cur: Cursor[Any], into: sql.Identifier, names: sql.Composable, with_value_num: bool
        ) -> None:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(into, names)) as copy:
                for row in _rows(config, keys, data, with_value_num, with_value_num):
                    copy.write_row(row)

        self._write_staged(config, table, copy_rows, unique=len(set(keys)) == len(keys))
        if progress:
            progress(len(data))

    def online_write_arrow(
        self, config: RepoConfig, table: FeatureView, rows: pa.Table, concurrency: int = 1
    ) -> bool:
        """Write the rows of Feast's materialisation plan (one per entity: the view's join keys,
        features and timestamps) as Feast's conversion and `online_write_batch` would, encoded
        by column (feature_tables.online_rows), in batches of `online_write_batch_size`
        entities. False, having written nothing, when the rows need Feast's own path (a null or
        unusual join key, a null timestamp, a vector store): the caller then takes it.

        The rows go in the online table's key order: each batch then touches one range of its
        indexes rather than pages all over them (2.7x faster inserts measured, docs/scale.md).
        With `concurrency` > 1, that many batches are encoded and upserted at once, each on a
        connection of its own: their key ranges are disjoint, so they never wait for each other
        (only when every key is unique: a key twice could straddle two batches, and then which
        row wins would depend on timing, so such rows are written one batch after the other).
        """
        if config.online_store.vector_enabled or rows.num_rows == 0:
            return False
        join_keys = {e.name: e.dtype.to_value_type() for e in table.entity_columns}
        rows = rows.combine_chunks()
        batch = rows.to_batches()[0] if rows.num_rows else None
        version = config.entity_key_serialization_version
        keys = online_rows.entity_keys(batch, join_keys, version) if batch else None
        source = table.batch_source
        if source is None:
            return False
        stamps = [s for s in (source.timestamp_field, source.created_timestamp_column) if s]
        if keys is None or any(
            s not in rows.schema.names
            or rows.column(s).null_count
            or not pa.types.is_timestamp(rows.column(s).type)
            for s in stamps
        ):
            return False
        order = pc.sort_indices(keys)
        rows, keys = rows.take(order), keys.take(order)
        size = config.materialization_config.online_write_batch_size or rows.num_rows
        batches = [
            (rows.slice(start, size), keys.slice(start, size))
            for start in range(0, rows.num_rows, size)
        ]
        workers = min(concurrency, len(batches))
        if workers <= 1 or pc.count_distinct(keys).as_py() < len(keys):
            for batch_rows, batch_keys in batches:
                self._write_encoded(config, table, batch_rows, batch_keys)
            return True
        self._value_num(config, table)  # the check's cache is filled before the threads read it
        connections: queue.SimpleQueue[Connection[Any]] = queue.SimpleQueue()
        with contextlib.ExitStack() as stack:
            for _ in range(workers):
                connections.put(stack.enter_context(_get_conn(config.online_store)))

            def write(batch: tuple[pa.Table, pa.BinaryArray]) -> None:
                conn = connections.get()
                try:
                    self._write_encoded(config, table, *batch, conn=conn)
                finally:
                    connections.put(conn)

            with ThreadPoolExecutor(workers, thread_name_prefix="online-write") as pool:
                list(pool.map(write, batches))  # the first error, if any, is raised here
        return True

    def _value_num(self, config: RepoConfig, table: FeatureView) -> bool:
        """Whether the view's online table has Feast's `value_num` column (cached by Feast)."""
        with self._get_conn(config) as conn, conn.cursor() as cur:
            has = self._check_table_has_value_num(cur, _table_name(config, table), config)
            conn.commit()
        return bool(has)

    def _write_encoded(
        self,
        config: RepoConfig,
        table: FeatureView,
        rows: pa.Table,
        keys: pa.BinaryArray,
        conn: Connection[Any] | None = None,
    ) -> None:
        """One batch: its online rows built by column, COPYed in CSV, upserted."""
        n = rows.num_rows
        source = _source(table)
        event_ts = _naive_utc_micros(rows.column(source.timestamp_field))
        created_ts = (
            _naive_utc_micros(rows.column(source.created_timestamp_column))
            if source.created_timestamp_column
            else pa.nulls(n, pa.timestamp("us"))
        )

        def copy_csv(
            cur: Cursor[Any], into: sql.Identifier, names: sql.Composable, with_value_num: bool
        ) -> None:
            features = [
                online_rows.encode_column(
                    rows.column(f.name).combine_chunks(), f.dtype.to_value_type(), with_value_num
                )
                for f in table.features
            ]
            count = len(features)

            def each_feature(arrays: list[pa.Array]) -> pa.Array:
                """Entity-major: an entity's rows together, in the order of `table.features`."""
                whole = pa.concat_arrays(arrays)
                interleave = np.arange(n)[:, None] + n * np.arange(count)[None, :]
                return whole.take(pa.array(interleave.reshape(-1)))

            columns = {
                "entity_key": each_feature([online_rows.hex_bytea(keys)] * count),
                "feature_name": pa.array([f.name for f in table.features] * n, pa.string()),
                "value": each_feature([online_rows.hex_bytea(e.value) for e in features]),
                "value_text": each_feature([e.text for e in features]),
                "value_num": each_feature([e.num for e in features]),
                "vector_value": pa.nulls(n * count, pa.string()),
                "event_ts": each_feature([event_ts] * count),
                "created_ts": each_feature([created_ts] * count),
            }
            if not with_value_num:
                del columns["value_num"]
            text = io.BytesIO()
            # Strings are quoted and a null is an empty field: COPY tells NULL from "".
            writing = pa_csv.WriteOptions(include_header=False)
            pa_csv.write_csv(pa.table(columns), text, writing)
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(into, names)
            with cur.copy(statement) as copy:
                copy.write(text.getbuffer())

        unique = pc.count_distinct(keys).as_py() == len(keys)
        # `keys` are sorted: a batch of unique keys spans [first, last] and nothing else.
        span = (keys[0].as_py(), keys[-1].as_py()) if unique else None
        self._write_staged(config, table, copy_csv, unique=unique, conn=conn, span=span)

    def _write_staged(
        self,
        config: RepoConfig,
        table: FeatureView,
        copy_rows: Callable[[Cursor[Any], sql.Identifier, sql.Composable, bool], None],
        unique: bool,
        conn: Connection[Any] | None = None,
        span: tuple[bytes, bytes] | None = None,
    ) -> None:
        """COPY rows into a temporary table (`copy_rows`), then upsert them in one statement,
        committed together (on `conn`, or the store's own connection).

        `span`: the rows' keys are unique and lie in [span[0], span[1]]. If the table holds no
        key in that range (a first load), the rows are COPYed straight into it: no staging
        table, no conflict checks (a plain insert of a batch was 1.5x faster than the upsert,
        docs/scale.md). Should another writer fill the range meanwhile, the COPY fails on the
        primary key, is rolled back, and the batch takes the upsert.
        """
        table_name = _table_name(config, table)
        own = self._get_conn(config) if conn is None else contextlib.nullcontext(conn)
        with own as conn, conn.cursor() as cur:
            with_value_num = self._check_table_has_value_num(cur, table_name, config)
            columns = _columns(with_value_num)
            target = sql.Identifier(table_name)
            names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            if span is not None:
                taken = sql.SQL(
                    "SELECT EXISTS (SELECT FROM {} WHERE entity_key BETWEEN %s AND %s)"
                ).format(target)
                row = cur.execute(taken, span).fetchone()
                if row is not None and not row[0]:
                    try:
                        copy_rows(cur, target, names, with_value_num)
                        conn.commit()
                        return
                    except psycopg.errors.UniqueViolation:
                        conn.rollback()
            cur.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DROP").format(
                    _STAGING, target
                )
            )
            copy_rows(cur, _STAGING, names, with_value_num)
            updates = sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                for c in columns
                if c not in KEY_COLUMNS
            )
            # One statement cannot upsert a key twice: if an entity comes more than once (never
            # from Feast's materialisation, which keeps an entity's newest row), the newest row
            # of a key wins; otherwise the rows go in as they are, without a sort.
            select = sql.SQL("SELECT {names} FROM {staging}")
            if not unique:
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
                    select=select.format(names=names, staging=_STAGING),
                    updates=updates,
                )
            )
            conn.commit()


def _source(table: FeatureView) -> DataSource:
    """The view's batch source (`online_write_arrow` has declined a view without one)."""
    if table.batch_source is None:
        raise ValueError(f"Feature view {table.name} has no batch source: nothing to write.")
    return table.batch_source


def _table_name(config: RepoConfig, table: FeatureView) -> str:
    return str(
        feast_postgres._table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
    )


def _columns(with_value_num: bool) -> list[str]:
    """The online table's columns a write fills, in Feast's order."""
    columns = ["entity_key", "feature_name", "value", "value_text"]
    columns += ["value_num"] if with_value_num else []
    return columns + ["vector_value", "event_ts", "created_ts"]


def _naive_utc_micros(column: pa.Array) -> pa.Array:
    """Timestamps as Feast sends them: UTC wall time without a zone, to the microsecond
    (`pd.to_datetime(...).to_pydatetime()`, then `_to_naive_utc`)."""
    micros = column.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    return pa.array(micros, pa.timestamp("us"))


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
