"""Reading Feast's online store for many entities of several views, as cheaply as possible.

`FeatureStore.get_online_features` re-resolves the feature service, builds protobuf responses and
runs on-demand transformations in pandas on every call: about as slow as the model itself. The
scorer needs plain values of a few known views, so it resolves the views once and calls the
online store's own `online_read` (the same read, the same deserialisation that
`get_online_features` uses, hence the same values). Static views (profiles) are cached for a
while; everything else is read on every batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from serving.errors import StoreUnavailable

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.provider import Provider
    from feast.repo_config import RepoConfig

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


class OnlineReader:
    """Batched reads of known views; one lock so a single store connection is never shared."""

    def __init__(self, store: FeatureStore) -> None:
        self._provider: Provider = store._get_provider()
        self._config: RepoConfig = store.config
        self._lock = threading.Lock()

    def read(self, reader: ViewReader, keys: Iterable[Key | None]) -> dict[Key, Row]:
        """Rows by entity value (None keys are skipped: e.g. deals without an account)."""
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
        if not self._is_postgres():
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

    def _is_postgres(self) -> bool:
        return type(self._provider.online_store).__name__ == "PostgreSQLOnlineStore"

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
        store: Any = self._provider.online_store  # PostgreSQLOnlineStore (checked above)
        try:
            with (
                self._lock,
                store._get_conn(self._config, autocommit=True) as conn,
                conn.cursor() as cur,
            ):
                cur.execute(query, params)
                fetched = cur.fetchall()
        except Exception as exc:
            self._reset_connection()
            names = ", ".join(reader.name for reader, _ in requests)
            raise StoreUnavailable(
                f"Online store unreachable while reading {names} "
                f"({type(exc).__name__}: {str(exc).strip()[:200]}). Check that it is up "
                "(`crm stack status`); requests succeed again as soon as it is back."
            ) from exc
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
        except Exception as exc:  # driver errors differ per store: psycopg, sqlite3, ...
            self._reset_connection()
            raise StoreUnavailable(
                f"Online store unreachable while reading {reader.name} "
                f"({type(exc).__name__}: {str(exc).strip()[:200]}). Check that it is up "
                "(`crm stack status`); requests succeed again as soon as it is back."
            ) from exc
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
