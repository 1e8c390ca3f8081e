"""Reading Feast's online store for many entities of several views, as cheaply as possible.

`FeatureStore.get_online_features` re-resolves the feature service, builds protobuf responses and
runs on-demand transformations in pandas on every call: about as slow as the model itself. The
scorer needs plain values of a few known views, so it resolves the views once and calls the
online store's own `online_read` (the same read, the same deserialisation that
`get_online_features` uses, hence the same values). Static views (profiles) are cached for a
while; everything else is read on every batch.

On PostgreSQL the scorer reads through a connection of its own (`PostgresConnection`) with every
timeout set: connect, statement, TCP keepalives, and a deadline enforced here, because a server
that stops answering keeps its TCP connection open and would otherwise block a read forever.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from serving.errors import StoreUnavailable

if TYPE_CHECKING:
    import psycopg
    from feast import FeatureStore, FeatureView
    from feast.infra.provider import Provider
    from feast.repo_config import RepoConfig

log = logging.getLogger("bentoml.crm_serving")

UNREACHABLE = (
    "Online store unreachable: check that it is up (`crm stack status`); requests succeed "
    "again as soon as it is back, no restart needed."
)

# A view's row for one entity: (event timestamp, {feature: python value}) or None when absent.
Row = tuple[datetime | None, dict[str, Any]] | None
# One entity of a view: its join key's value, or a tuple of values (in the view's entity-columns
# order) for a view keyed by several entities, e.g. ("GTX Pro", "retail").
Key = str | tuple[str, ...]


@dataclass
class ViewReader:
    """One feature view: its join keys (entity-columns order) and the features needed from it."""

    view: FeatureView
    join_keys: tuple[str, ...] | str
    features: list[str]
    cache_seconds: float = 0.0
    static: bool = False  # profile-like view (not used for the default request time)
    _cache: dict[Key, tuple[float, Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.join_keys, str):
            self.join_keys = (self.join_keys,)
        self.join_keys = tuple(self.join_keys)
        if not self.join_keys:
            raise ValueError(f"View {self.view.name} has no join key: serving cannot read it.")

    @property
    def name(self) -> str:
        return self.view.name

    def key(self, values: Mapping[str, str | None]) -> Key | None:
        """This view's key from an entity's join-key values; None if any of them is null
        (Feast has no row for a null key: the view's features are null, as offline)."""
        parts = [values.get(k) for k in self.join_keys]
        present = [part for part in parts if part is not None]
        if len(present) < len(parts):
            return None
        return present[0] if len(present) == 1 else tuple(present)


def entity_key(join_keys: str | Sequence[str], value: Key) -> EntityKeyProto:
    """The entity key proto Feast's online stores serialise (several keys: one entity key with
    all of them; `serialize_entity_key` orders the pairs by key name, as Feast's writes do)."""
    keys = [join_keys] if isinstance(join_keys, str) else list(join_keys)
    values = [value] if isinstance(value, str) else list(value)
    if len(keys) != len(values):
        raise ValueError(f"Join keys {keys} need as many values, got {values}.")
    return EntityKeyProto(join_keys=keys, entity_values=[ValueProto(string_val=v) for v in values])


def _python(values: dict[str, ValueProto] | None) -> dict[str, Any]:
    if not values:
        return {}
    return {name: feast_value_type_to_python_type(proto) for name, proto in values.items()}


@dataclass(frozen=True)
class StoreTimeouts:
    """Bounds on every call to a networked online store (PostgreSQL)."""

    connect_s: float = 2.0  # TCP, TLS and authentication; libpq's own minimum is 2 s
    read_s: float = 1.0  # the server's statement_timeout, and the deadline of a read here
    retry_s: float = 0.5  # between reconnection attempts while the store is down
    keepalive_idle_s: int = 10  # TCP keepalives: a dead peer is noticed after ~idle + 3 x 3 s


class Watchdog:
    """Ends socket reads that outlive their deadline by shutting the socket down.

    libpq has no client-side query timeout, and a server that stops answering keeps the TCP
    connection open (the kernel still acknowledges): neither the server's statement_timeout nor
    keepalives ever fire. A shut-down socket makes the blocked call fail at once, so the caller
    answers 503 and reconnects. One thread, waking every `tick_s`, serves every deadline.
    """

    def __init__(self, tick_s: float = 0.05) -> None:
        self.tick_s = tick_s
        self._armed: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None
        self.fired = 0

    @contextlib.contextmanager
    def deadline(self, fd: int, seconds: float) -> Iterator[None]:
        """Shut `fd` down if the block is still running after `seconds`."""
        key = next(self._keys)
        with self._lock:
            self._armed[key] = (time.monotonic() + seconds, fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="store-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:  # never shut down an fd after its owner moved on
                self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick_s)
            now = time.monotonic()
            with self._lock:
                expired = [k for k, (deadline, _) in self._armed.items() if deadline <= now]
                for key in expired:
                    _, fd = self._armed.pop(key)
                    self.fired += 1
                    _shutdown(fd)


def _shutdown(fd: int) -> None:
    """Shut the socket behind `fd` down (both ways) without closing its owner's descriptor."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


WATCHDOG = Watchdog()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[:300]}"


class PostgresConnection:
    """The scorer's one connection to a PostgreSQL online store, every timeout set.

    Feast's own connection sets none. Once a read fails, the connection is dropped and reads
    fail at once (503, no waiting) while a background thread reconnects every `retry_s`; the
    first read after it is back succeeds. Not thread-safe: the caller serialises reads.
    """

    def __init__(self, config: Any, timeouts: StoreTimeouts, watchdog: Watchdog = WATCHDOG) -> None:
        """`config`: Feast's `PostgreSQLConfig` (`repo_config.online_store`)."""
        from feast.infra.utils.postgres.connection_utils import _get_conn_kwargs, _get_conninfo

        self.timeouts = timeouts
        self._watchdog = watchdog
        kwargs: dict[str, Any] = _get_conn_kwargs(config)  # ssl, search_path: as Feast connects
        statement_ms = max(1, math.ceil(timeouts.read_s * 1000))
        kwargs["options"] = f"{kwargs.get('options') or ''} -c statement_timeout={statement_ms}"
        idle = max(1, int(timeouts.keepalive_idle_s))
        kwargs |= {
            "connect_timeout": max(2, math.ceil(timeouts.connect_s)),
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": 3,
            "keepalives_count": 3,
            "tcp_user_timeout": (idle + 9) * 1000,  # unacknowledged writes: as keepalives
            "application_name": "crm-scorer",
            "autocommit": True,
        }
        self._conninfo: str = _get_conninfo(config)
        self._kwargs = kwargs
        self._conn: psycopg.Connection[Any] | None = None
        self.error = "not connected yet"
        self.down_since: float | None = None
        self._state = threading.Lock()
        self._reconnecting = False
        self._closed = threading.Event()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def open(self) -> None:
        """Connect now; if that fails, reads answer 503 and a background thread reconnects."""
        try:
            self._conn = self._connect()
        except Exception as exc:
            self._lost(exc, None)

    def query(self, query: Any, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of `query`; raises (at once while the store is down) on any failure."""
        conn = self._conn
        if conn is None:
            raise ConnectionError(self.error)
        try:
            with (
                self._watchdog.deadline(conn.pgconn.socket, self.timeouts.read_s),
                conn.cursor() as cur,
            ):
                cur.execute(query, params)
                return cur.fetchall()
        except Exception as exc:
            self._lost(exc, conn)
            raise

    def close(self) -> None:
        self._closed.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(self._conninfo, **self._kwargs)
        try:
            with self._watchdog.deadline(conn.pgconn.socket, self.timeouts.read_s):
                conn.execute("SELECT 1")
        except Exception:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return conn

    def _lost(self, exc: BaseException, conn: psycopg.Connection[Any] | None) -> None:
        self.error = _describe(exc)
        if conn is not None:
            if self._conn is conn:
                self._conn = None
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                conn.close()
        with self._state:
            if self._reconnecting or self._closed.is_set():
                return
            self._reconnecting = True
            self.down_since = time.monotonic()
        log.warning(
            "Online store lost (%s); answering 503 and reconnecting every %.1f s",
            self.error,
            self.timeouts.retry_s,
        )
        threading.Thread(target=self._reconnect, name="store-reconnect", daemon=True).start()

    def _reconnect(self) -> None:
        try:
            while not self._closed.is_set():
                try:
                    conn = self._connect()
                except Exception as exc:
                    self.error = _describe(exc)
                    self._closed.wait(self.timeouts.retry_s)
                    continue
                if self._closed.is_set():
                    conn.close()
                    return
                self._conn = conn
                down = time.monotonic() - (self.down_since or time.monotonic())
                log.info("Online store back after %.1f s", down)
                return
        finally:
            with self._state:
                self._reconnecting = False
                self.down_since = None


class OnlineReader:
    """Batched reads of known views; one lock so a single store connection is never shared."""

    def __init__(self, store: FeatureStore, timeouts: StoreTimeouts | None = None) -> None:
        self._provider: Provider = store._get_provider()
        self._config: RepoConfig = store.config
        self._lock = threading.Lock()
        self.postgres: PostgresConnection | None = None
        if type(self._provider.online_store).__name__ == "PostgreSQLOnlineStore":
            self.postgres = PostgresConnection(
                store.config.online_store, timeouts or StoreTimeouts()
            )
            self.postgres.open()

    @property
    def remote(self) -> bool:
        """A networked store (PostgreSQL): its reads can stall, so they run off the event loop."""
        return self.postgres is not None

    def cached_many(
        self, requests: Sequence[tuple[ViewReader, Iterable[Key | None]]]
    ) -> dict[str, dict[Key, Row]] | None:
        """What `read_many` would return, if every row is cached (no read needed); else None."""
        now = time.monotonic()
        out: dict[str, dict[Key, Row]] = {}
        for reader, keys in requests:
            found, missing = self._cached(reader, keys, now)
            if missing:
                return None
            out[reader.name] = found
        return out

    def close(self) -> None:
        """Close the connection of its own (PostgreSQL); waits for a read in progress."""
        with self._lock:
            if self.postgres is not None:
                self.postgres.close()

    def read(self, reader: ViewReader, keys: Iterable[Key | None]) -> dict[Key, Row]:
        """Rows by entity value (None keys are skipped: e.g. deals without an account)."""
        if self.postgres is not None:
            return self.read_many([(reader, keys)])[reader.name]
        now = time.monotonic()
        found, missing = self._cached(reader, keys, now)
        if missing:
            rows = self._online_read(reader, missing)
            expires = now + reader.cache_seconds
            for key, row in zip(missing, rows, strict=True):
                found[key] = row
                if reader.cache_seconds and row is not None:
                    reader._cache[key] = (expires, row)
        return found

    def read_many(
        self, requests: Sequence[tuple[ViewReader, Iterable[Key | None]]]
    ) -> dict[str, dict[Key, Row]]:
        """Several views at once: on PostgreSQL one round trip for all of them."""
        if self.postgres is None:
            return {reader.name: self.read(reader, keys) for reader, keys in requests}
        now = time.monotonic()
        out: dict[str, dict[Key, Row]] = {}
        to_read: list[tuple[ViewReader, list[Key]]] = []
        for reader, keys in requests:
            found, missing = self._cached(reader, keys, now)
            out[reader.name] = found
            if missing:
                to_read.append((reader, missing))
        if to_read:
            rows = self._postgres_read(to_read)
            for reader, missing in to_read:
                expires = now + reader.cache_seconds
                for key in missing:
                    row = rows[reader.name].get(key)
                    out[reader.name][key] = row
                    if reader.cache_seconds and row is not None:
                        reader._cache[key] = (expires, row)
        return out

    def _cached(
        self, reader: ViewReader, keys: Iterable[Key | None], now: float
    ) -> tuple[dict[Key, Row], list[Key]]:
        found: dict[Key, Row] = {}
        missing: list[Key] = []
        for key in sorted({k for k in keys if k is not None}):
            cached = reader._cache.get(key) if reader.cache_seconds else None
            if cached is not None and cached[0] > now:
                found[key] = cached[1]
            else:
                missing.append(key)
        return found, missing

    def _postgres_read(
        self, requests: list[tuple[ViewReader, list[Key]]]
    ) -> dict[str, dict[Key, Row]]:
        """Feast's PostgreSQL `online_read` query for each view, glued with UNION ALL.

        Same tables, keys and value encoding as `PostgreSQLOnlineStore.online_read`; only the
        number of round trips changes (one instead of one per view).
        """
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.postgres_online_store.postgres import _table_id
        from psycopg import sql

        version = self._config.entity_key_serialization_version
        versioning = self._config.registry.enable_online_feature_view_versioning
        parts: list[sql.Composable] = []
        params: list[Any] = []
        key_of: dict[tuple[str, bytes], Key] = {}
        for n, (reader, keys) in enumerate(requests):
            serialized = []
            for key in keys:
                raw = serialize_entity_key(
                    entity_key(reader.join_keys, key), entity_key_serialization_version=version
                )
                key_of[(reader.name, raw)] = key
                serialized.append(raw)
            table = sql.Identifier(_table_id(self._config.project, reader.view, versioning))
            parts.append(
                sql.SQL(
                    "SELECT {n}, entity_key, feature_name, value, event_ts FROM {table} "
                    "WHERE entity_key = ANY(%s) AND feature_name = ANY(%s)"
                ).format(n=sql.Literal(n), table=table)
            )
            params += [serialized, reader.features]
        query = sql.SQL(" UNION ALL ").join(parts)
        assert self.postgres is not None
        try:
            with self._lock:
                fetched = self.postgres.query(query, params)
        except Exception as exc:  # the detail is in the log (PostgresConnection), not the answer
            raise StoreUnavailable(UNREACHABLE) from exc
        out: dict[str, dict[Key, Row]] = {reader.name: {} for reader, _ in requests}
        for n, raw_key, feature, value, event_ts in fetched:
            name = requests[n][0].name
            raw = raw_key if isinstance(raw_key, bytes) else bytes(raw_key)
            key = key_of[(name, raw)]
            proto = ValueProto()
            proto.ParseFromString(bytes(value))
            row = out[name].get(key)
            if row is None:
                row = out[name][key] = (event_ts, {})
            row[1][feature] = feast_value_type_to_python_type(proto)
        return out

    def _online_read(self, reader: ViewReader, keys: list[Key]) -> list[Row]:
        entity_keys = [entity_key(reader.join_keys, key) for key in keys]
        try:
            with self._lock:
                result = self._provider.online_read(
                    config=self._config,
                    table=reader.view,
                    entity_keys=entity_keys,
                    requested_features=reader.features,
                )
        except Exception as exc:  # driver errors differ per store: sqlite3, ...
            self._reset_connection()
            log.warning("Online store read of %s failed: %s", reader.name, _describe(exc))
            raise StoreUnavailable(UNREACHABLE) from exc
        rows: list[Row] = []
        for event_ts, values in result:
            rows.append(None if values is None else (event_ts, _python(values)))
        return rows

    def _reset_connection(self) -> None:
        """Drop a broken cached connection so the next read reconnects (no restart needed)."""
        store = getattr(self._provider, "online_store", None) or getattr(
            self._provider, "_online_store", None
        )
        for attribute in ("_conn", "_conn_pool"):
            conn = getattr(store, attribute, None)
            if conn is None:
                continue
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                conn.close()
            setattr(store, attribute, None)
