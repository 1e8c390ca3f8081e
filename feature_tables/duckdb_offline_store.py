"""Feast's DuckDB offline store with its point-in-time join written as DuckDB ASOF joins.

Feast 0.67's `DuckDBOfflineStore.get_historical_features` builds the join in ibis
(`feast.infra.offline_stores.ibis.point_in_time_join`): per view, an inner join of the entity
rows with *every* feature row of the same keys up to the entity time, then a window that keeps
the newest. Each entity row meets hundreds of daily rows before the window drops them, and a
string id is built per entity row to join the views back: 332 s for the 1.9M examples of 1M
opportunities on this 2-core machine (docs/scale.md).

This subclass keeps the rest of Feast's store (materialisation reads, writes, logging,
monitoring) and replaces that join with DuckDB ASOF joins: for each set of join keys, the
distinct (keys, time) of the entity rows `ASOF LEFT JOIN` each view's Parquet on the keys and
`entity time >= feature time` (`_features_at`); every entity row, numbered so it comes back in
its place and is never merged with another, then finds its features by a hash join on
(keys, time) (`_rows_query`). The semantics are the stock store's:

- the newest feature row at or before the entity time; of rows at one time, the newest
  `created_timestamp_column` (rows are deduplicated on keys and time first);
- a view with a TTL gives nulls when that row is older than `entity time - ttl` (a zero TTL
  never expires, as in Feast);
- a null join key matches nothing: the row stays, its features are null;
- the projection's join key map, the source's field mapping and `full_feature_names` name the
  columns as Feast does; on-demand views run in Feast's `RetrievalJob.to_arrow`, each on
  the columns it declares as inputs (`DeclaredInputs`).

It reads through the connection of ibis' default DuckDB backend, the one Feast's own store
reads through, so the lake's in-process S3 secret (`feature_tables.store.use_lake_duckdb`)
applies and no persistent secret does. Anything this join does not cover (an entity SQL
string, a non-Parquet or credentialed source, `filter_by_created_timestamp` with a created
column) goes to Feast's own join, so the answer is the same, only slower.
`tests/pipeline/test_duckdb_offline_store.py` holds the result equal to Feast's stock store and
to the slow reference.

Select it in a feature_store.yaml with
`offline_store: {type: feature_tables.duckdb_offline_store.CRMDuckDBOfflineStore}`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureView
from feast.data_format import ParquetFormat
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _write_data_source,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage

from feature_tables.errors import FeatureTablesError
from feature_tables.on_demand_inputs import DeclaredInputs
from infra.duck import sql_literal

# Temporary column names inside the query (no feature or key of the repo may use them).
_ROW = "__crm_row"
_FEATURE_TS = "__crm_feature_ts"

_StoreType = Literal["feature_tables.duckdb_offline_store.CRMDuckDBOfflineStore"]


class CRMDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Feast's DuckDB offline store options, under this store's type name."""

    # Feast finds a store by this name; pydantic narrows the base's StrictStr, which mypy refuses.
    type: _StoreType = "feature_tables.duckdb_offline_store.CRMDuckDBOfflineStore"  # type: ignore[assignment]


@dataclass(frozen=True)
class _ViewJoin:
    """What one view adds to the query: its rows, keys, TTL and output columns."""

    source: str  # a `read_parquet(...)` of the view's source
    keys: dict[str, str]  # column in the view (after field mapping) -> column of the entity rows
    timestamp: str
    created: str | None
    ttl: timedelta | None
    outputs: dict[str, str]  # feature (after field mapping) -> output column
    renames: dict[str, str]  # the source's field mapping: column in the file -> name in Feast


class CRMDuckDBOfflineStore(DuckDBOfflineStore):
    """`DuckDBOfflineStore` whose historical retrieval is DuckDB ASOF joins (module docstring)."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if entity_df is None:
            raise FeatureTablesError(
                "Historical features need entity rows: pass an entity DataFrame (or SQL) to "
                "get_historical_features."
            )
        if not isinstance(entity_df, pd.DataFrame) or not all(
            _joinable(view, filter_by_created_timestamp) for view in feature_views
        ):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        entity_ts = infer_event_timestamp_from_entity_df(
            dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        )
        entities = entity_df.reset_index(drop=True)
        stamps = entities[entity_ts].infer_objects()
        if pd.api.types.is_string_dtype(stamps) or pd.api.types.is_object_dtype(stamps):
            entities = entities.assign(**{entity_ts: pd.to_datetime(stamps, utc=True)})
        joins = [
            join
            for view in feature_views
            if (join := _view_join(view, feature_refs, full_feature_names)) is not None
        ]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=list(set(entities.columns) - {entity_ts}),
            min_event_timestamp=entities[entity_ts].min().to_pydatetime(),
            max_event_timestamp=entities[entity_ts].max().to_pydatetime(),
        )
        return CRMDuckDBRetrievalJob(
            entities, entity_ts, joins, odfvs, full_feature_names, metadata, str(config.repo_path)
        )


class CRMDuckDBRetrievalJob(RetrievalJob):
    """The entity rows with their features, computed by one DuckDB query when asked for."""

    def __init__(
        self,
        entities: pd.DataFrame,
        entity_ts: str,
        joins: list[_ViewJoin],
        odfvs: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
        repo_path: str,
    ) -> None:
        super().__init__()
        self._entities = entities
        self._entity_ts = entity_ts
        self._joins = joins
        # Feast's `to_arrow` runs them on the joined table; each sees only its declared inputs.
        self._on_demand_feature_views = [DeclaredInputs(odfv) for odfv in odfvs]
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._repo_path = repo_path

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views  # type: ignore[return-value]

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        """The entity columns as given, then each view's features, in the entity rows' order."""
        import ibis

        entities = _microseconds(pa.Table.from_pandas(self._entities, preserve_index=False))
        keys = sorted({column for join in self._joins for column in join.keys.values()})
        numbered = entities.select([self._entity_ts, *keys]).append_column(
            _ROW, pa.array(range(entities.num_rows), type=pa.int64())
        )
        name = f"__crm_entities_{uuid.uuid4().hex}"
        groups: dict[tuple[str, ...], list[_ViewJoin]] = {}  # views by their entity keys
        for join in self._joins:
            groups.setdefault(tuple(join.keys.values()), []).append(join)
        views = [f"{name}_k{n}" for n in range(len(groups))]
        con = ibis.get_backend().con.cursor()  # Feast's DuckDB, with the lake's secret
        try:
            con.execute("SET TimeZone = 'UTC'")  # naive times are UTC, as in Feast's store
            # DuckDB cannot tell how many distinct entity rows there are and may guess few:
            # a nested loop over them took 10x the ASOF join's time on 250k entity rows.
            con.execute("SET asof_loop_join_threshold = 0")
            con.register(name, numbered)
            tables = []
            for view, (key_set, joins) in zip(views, groups.items(), strict=True):
                query = _features_at(name, self._entity_ts, list(key_set), joins)
                con.execute(f"CREATE TEMP TABLE {view} AS {query}")
                outputs = ", ".join(_ident(c) for j in joins for c in j.outputs.values())
                tables.append(con.execute(f"SELECT {outputs} FROM {view} ORDER BY rowid"))
                tables[-1] = tables[-1].to_arrow_table()
            query = _rows_query(name, self._entity_ts, list(groups), views)
            rows = con.execute(query).to_arrow_table()
            # Back in the entity rows' order: a scatter by row number, cheaper than a sort.
            order = np.empty(rows.num_rows, dtype=np.int64)
            order[rows.column(_ROW).to_numpy()] = np.arange(rows.num_rows)
            rows = rows.take(order)
        finally:
            for view in views:
                con.execute(f"DROP TABLE IF EXISTS {view}")
            con.close()
        given = entities.column_names
        for n, table in enumerate(tables):  # each entity row's features, null where none
            picked = table.take(rows.column(f"__crm_pick{n}"))
            for column in picked.column_names:
                entities = entities.append_column(column, picked.column(column))
        # Views were joined grouped by their keys; the columns come in the requested order,
        # as Feast's own join gives them.
        return entities.select([*given, *(c for j in self._joins for c in j.outputs.values())])

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        """Write the dataset where `storage` says, with Feast's own DuckDB store writer."""
        import ibis

        _write_data_source(
            ibis.memtable(self.to_arrow(timeout=timeout)),
            storage.to_data_source(),
            self._repo_path,
            "overwrite",
            allow_overwrite,
        )


def _microseconds(table: pa.Table) -> pa.Table:
    """Nanosecond times cut to DuckDB's microseconds, as Feast's join returns the entity rows."""
    schema = pa.schema(
        field.with_type(pa.timestamp("us", field.type.tz))
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns"
        else field
        for field in table.schema
    )
    return table.cast(schema, safe=False)


def _joinable(view: FeatureView, filter_by_created_timestamp: bool) -> bool:
    """Whether this module's join covers the view; Feast's own join takes the rest."""
    source = view.batch_source
    return (
        isinstance(source, FileSource)
        and isinstance(source.file_format, ParquetFormat)
        and source.connection_ref is None
        and not (filter_by_created_timestamp and source.created_timestamp_column)
    )


def _view_join(
    view: FeatureView, feature_refs: list[str], full_feature_names: bool
) -> _ViewJoin | None:
    """The view's part of the query, named as Feast's ibis join names it; None: nothing asked."""
    prefix = view.projection.name_to_use()
    features = [ref.split(":")[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
    if not features:
        return None
    source = view.batch_source
    assert isinstance(source, FileSource)  # checked by _joinable
    base = view.projection.name_alias or view.name
    return _ViewJoin(
        source=f"read_parquet({sql_literal(source.path)})",
        keys=dict(view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}),
        timestamp=source.timestamp_field,
        created=source.created_timestamp_column or None,
        ttl=view.ttl,
        outputs={f: f"{base}__{f}" if full_feature_names else f for f in features},
        renames=dict(source.field_mapping),
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _interval(ttl: timedelta) -> str:
    return f"to_microseconds({ttl // timedelta(microseconds=1)})"


def _view_rows(join: _ViewJoin, entities: str, entity_ts: str) -> str:
    """The view's rows an entity row can see, one per keys and time (newest `created` wins)."""
    renamed = {v: k for k, v in join.renames.items()}  # name in Feast -> column in the file

    def column(name: str) -> str:
        return _ident(renamed.get(name, name))

    keys = [f"{column(k)} AS {_ident(k)}" for k in join.keys]
    features = [f"{column(f)} AS {_ident(f)}" for f in join.outputs]
    ts = f"CAST({column(join.timestamp)} AS TIMESTAMPTZ)"
    window = f"row_number() OVER (PARTITION BY {', '.join([*map(column, join.keys), ts])}"
    if join.created:
        window += f" ORDER BY CAST({column(join.created)} AS TIMESTAMPTZ) DESC NULLS LAST"
    bounds = f"{ts} <= (SELECT max({_ident(entity_ts)}) FROM {entities})"
    if join.ttl:
        bounds += (
            f" AND {ts} >= (SELECT min({_ident(entity_ts)}) FROM {entities})"
            f" - {_interval(join.ttl)}"
        )
    return (
        f"SELECT {', '.join([*keys, *features])}, {ts} AS {_FEATURE_TS} FROM {join.source}"
        f" WHERE {bounds} QUALIFY {window}) = 1"
    )


def _features_at(entities: str, entity_ts: str, keys: list[str], joins: list[_ViewJoin]) -> str:
    """The features of views joined on the same entity `keys`, at each distinct (keys, time)
    of the entity rows.

    Entity rows repeat their keys and time a lot (the 1.9M examples of 1M deals hold 13k
    distinct agent-days), so the ASOF joins, which sort both their sides, see only those;
    each entity row then finds its features by one hash join per key set (`_rows_query`).
    """
    ts = _ident(entity_ts)
    selects = [f"d.{_ident(k)}" for k in keys] + [f"d.{ts}"]
    clauses = []
    for n, join in enumerate(joins):
        alias = f"f{n}"
        for feature, output in join.outputs.items():
            value = f"{alias}.{_ident(feature)}"
            if join.ttl:  # Feast: no TTL when it is zero or unset
                fresh = f"{alias}.{_FEATURE_TS} >= d.{ts} - {_interval(join.ttl)}"
                value = f"CASE WHEN {fresh} THEN {value} END"
            selects.append(f"{value} AS {_ident(output)}")
        on = [f"d.{_ident(e)} = {alias}.{_ident(k)}" for k, e in join.keys.items()]
        on.append(f"d.{ts} >= {alias}.{_FEATURE_TS}")
        rows = _view_rows(join, entities, entity_ts)
        clauses.append(f"ASOF LEFT JOIN ({rows}) AS {alias} ON {' AND '.join(on)}")
    distinct = f"SELECT DISTINCT {', '.join([*map(_ident, keys), ts])} FROM {entities}"
    return f"SELECT {', '.join(selects)} FROM ({distinct}) AS d {' '.join(clauses)}"


def _rows_query(
    entities: str, entity_ts: str, keys: list[tuple[str, ...]], views: list[str]
) -> str:
    """Per entity row (in no order: its number says which), the row id of its (keys, time)
    in each key set's table."""
    picks, clauses = [], []
    for n, (columns, view) in enumerate(zip(keys, views, strict=True)):
        on = " AND ".join(f"e.{c} = {view}.{c}" for c in map(_ident, [*columns, entity_ts]))
        picks.append(f"{view}.rowid AS __crm_pick{n}")
        clauses.append(f"LEFT JOIN {view} ON {on}")
    return f"SELECT {', '.join([f'e.{_ROW}', *picks])} FROM {entities} AS e {' '.join(clauses)}"
