"""Feast's Ray offline store with a point-in-time join that keeps every entity row.

Feast 0.67's `RayOfflineStore.get_historical_features` is not point-in-time correct for this
repo (reproduced on a 40-row entity frame of the scoring service: 12 rows came back):

- its broadcast join drops duplicate `(join keys, timestamp)` entity rows per view, so two
  deals of one agent scored at the same time collapse into one, and rows with a null join key
  (an open deal without an account) are dropped instead of getting null features;
- it ignores the views' TTL (the daily stats views have a 1-day TTL: DuckDB returns null past
  it, Ray an arbitrarily old row);
- its distributed path (feature tables above `broadcast_join_threshold_mb`) matches features
  only within the same `window_size_for_joins` bucket (1 hour by default).

This subclass keeps the rest of Feast's store (Ray start-up, Ray Data filtering, the Ray
compute engine's writes, `RayRetrievalJob` and its on-demand transformations) and replaces
that join: each view's rows, read from the lake and cut to the entity frame's time range, are
broadcast through the object store, and every block of the entity frame is joined to them by
`merge_asof` on the view's join keys, in the Ray workers, with DuckDB's semantics (the newest
row at or before the entity time, within the TTL; the newest `created` on ties; null features
for a null key). The entity rows stay in order and none is dropped:
`tests/pipeline/test_ray_profile.py` holds the result equal to the DuckDB store's. It also
replaces the Ray engine's read (`pull_all_from_table_or_query`, see there).

Select it in a feature_store.yaml with
`offline_store: {type: feature_tables.ray_offline_store.CRMRayOfflineStore, ...}`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView
from feast.data_source import DataSource
from feast.errors import RequestDataNotFoundInEntityDfException
from feast.feature_view_utils import resolve_feature_view_source_with_fallback
from feast.infra.offline_stores.contrib.ray_offline_store.ray import (
    RayOfflineStore,
    RayOfflineStoreConfig,
    RayRetrievalJob,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.ray_shared_utils import normalize_arrow_dtypes
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.types import from_feast_to_pyarrow_type
from feast.utils import _get_column_names
from pyarrow import fs as pafs

from feature_tables.errors import FeatureTablesError
from feature_tables.on_demand_inputs import DeclaredInputs
from infra.ray_runtime import connect
from infra.settings import get_settings

# Temporary column names inside a join (no feature or key of the repo may use them).
_FEATURE_TS = "__feature_ts"
_FEATURE_CREATED = "__feature_created"
_ROW = "__row"


_StoreType = Literal["feature_tables.ray_offline_store.CRMRayOfflineStore"]


class CRMRayOfflineStoreConfig(RayOfflineStoreConfig):
    """Feast's Ray offline store options, under this store's type name."""

    # Feast finds a store by this name; pydantic narrows the base's Literal, which mypy refuses.
    type: _StoreType = "feature_tables.ray_offline_store.CRMRayOfflineStore"  # type: ignore[assignment]


class CRMRayOfflineStore(RayOfflineStore):
    """`RayOfflineStore` whose historical retrieval is point-in-time correct (module docstring)."""

    def _init_ray(self, config: RepoConfig) -> None:
        """Start or join Ray the profile's way (bounded, `infra.ray_runtime`) before Feast would
        start its own with every core; only when the store is used, so the scorer never does."""
        connect(get_settings())
        super()._init_ray(config)

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        import ray

        if not isinstance(entity_df, pd.DataFrame):
            raise FeatureTablesError(
                "The cluster profile's offline store reads historical features for an entity "
                "DataFrame only: pass one to get_historical_features."
            )
        store = CRMRayOfflineStore()
        store._init_ray(config)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        for odfv in odfvs:
            for name in odfv.get_request_data_schema():
                if name not in entity_df.columns:
                    raise RequestDataNotFoundInEntityDfException(
                        feature_name=name, feature_view_name=odfv.name
                    )
        entity_ts = infer_event_timestamp_from_entity_df(
            dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        )
        entities = entity_df.reset_index(drop=True).copy()
        entities[entity_ts] = _utc_ns(entities[entity_ts])
        entities[_ROW] = np.arange(len(entities), dtype=np.int64)
        for column in entities.select_dtypes(include="object").columns:
            # NaN beside strings (a key of a deal without an account) would make Ray Data keep
            # the column as Python objects; None makes it an Arrow string column.
            entities[column] = entities[column].astype(object).where(entities[column].notna(), None)
        earliest, latest = entities[entity_ts].min(), entities[entity_ts].max()

        dataset: Any = ray.data.from_pandas(entities)  # grows one join per view
        odfv_names = {odfv.name for odfv in odfvs}
        pa_types: dict[str, pa.DataType] = {}
        for view in feature_views:
            if view.name in odfv_names:
                continue
            prefix = view.projection.name_to_use()
            features = [
                ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(prefix + ":")
            ]
            if not features:
                continue
            spec = _view_spec(registry, project, view, features)
            rows = _read_view(config, view, spec, earliest, latest)
            outputs = {f: f"{prefix}__{f}" if full_feature_names else f for f in features}
            dataset = dataset.map_batches(
                _join_view,
                batch_format="pandas",
                zero_copy_batch=False,
                fn_kwargs={
                    "rows_ref": ray.put(rows),
                    "entity_keys": spec["entity_keys"],
                    "view_keys": spec["view_keys"],
                    "entity_ts": entity_ts,
                    "ttl": view.ttl,
                    "outputs": outputs,
                },
            )
            for feature in view.features:
                if feature.name in outputs:
                    pa_types[outputs[feature.name]] = from_feast_to_pyarrow_type(feature.dtype)

        job = _DriverFrameJob(
            lambda: _in_entity_order(dataset),
            staging_location=config.offline_store.storage_path,
            config=config.offline_store,
        )
        job._full_feature_names = full_feature_names
        # Each on-demand view sees its declared inputs, not the whole joined table.
        job._on_demand_feature_views = [DeclaredInputs(odfv) for odfv in odfvs]  # type: ignore[misc]
        job._feature_refs = feature_refs
        job._entity_df = entity_df
        job._feature_pa_types = pa_types
        job._metadata = job._create_metadata()
        return job

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        """The rows the Ray engine materialises, as a Ray Dataset, filtered by Feast's own code.

        Feast's version checks the source through fsspec, which needs `s3fs` for an `s3://`
        lake (not installed: pyarrow reads the data), then reads it with Ray Data's
        `read_parquet`, whose file-listing task alone took 7 to 19 s per table on this
        2-core machine. A view is one Parquet object per snapshot, which Ray Data reads in
        one task anyway: pyarrow reads it here and hands it to Ray Data (`from_arrow`), and
        Feast's filter and the engine's writes run on Ray as before.
        """
        import ray

        store = CRMRayOfflineStore()
        store._init_ray(config)
        if not isinstance(data_source, FileSource):
            raise FeatureTablesError(
                f"{data_source.name} is a {type(data_source).__name__}; the cluster profile's "
                "offline store reads lake Parquet FileSources (feature_repo/data_sources.py)."
            )
        uri = store._get_source_path(data_source, config)
        filesystem, path = pafs.FileSystem.from_uri(uri)
        if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            raise FeatureTablesError(f"No Parquet at {uri}: run `crm features`, then apply.")
        columns = [*join_key_columns, *feature_name_columns, timestamp_field]
        if created_timestamp_column:
            columns.append(created_timestamp_column)

        def load() -> Any:
            table = pq.read_table(path, columns=list(dict.fromkeys(columns)), filesystem=filesystem)
            return store._load_and_filter_dataset_ray(
                None,
                data_source,
                join_key_columns,
                feature_name_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
                pre_loaded_ds=ray.data.from_arrow(table),
            )

        return RayRetrievalJob(
            load, staging_location=config.offline_store.storage_path, config=config.offline_store
        )


def _view_spec(
    registry: BaseRegistry,
    project: str,
    view: FeatureView,
    features: list[str],
) -> dict[str, Any]:
    """Join keys (in the view's source and in the entity frame), columns to read, timestamps."""
    entities = [registry.get_entity(name, project) for name in view.entities or []]
    view_keys, _, timestamp, created = _get_column_names(view, entities)
    key_map = view.projection.join_key_map or {}
    if view.batch_source is None or view.batch_source.field_mapping:
        raise FeatureTablesError(
            f"Feature view {view.name} has no batch source or maps its fields; the cluster "
            "profile's offline store reads lake Parquet named as the features (feature_repo/)."
        )
    return {
        "view_keys": list(view_keys),
        "entity_keys": [key_map.get(key, key) for key in view_keys],
        "timestamp": timestamp,
        "created": created or None,
        "features": features,
    }


def _read_view(
    config: RepoConfig,
    view: FeatureView,
    spec: dict[str, Any],
    earliest: pd.Timestamp,
    latest: pd.Timestamp,
) -> pd.DataFrame:
    """The view's rows an entity in [earliest, latest] can see, read from the lake.

    Read with pyarrow in this process, not with Ray Data's `read_parquet`: the rows are
    broadcast to every worker anyway (as in Feast's own broadcast join, which collects them
    here too), and on this 2-core machine each Ray Data read took 7 to 19 s of task start-up
    for tables pyarrow reads in 0.03 to 0.2 s (docs/scale-out.md).
    """
    source = resolve_feature_view_source_with_fallback(view, config, is_materialization=False)
    if not isinstance(source.data_source, FileSource):
        raise FeatureTablesError(
            f"Feature view {view.name} reads {type(source.data_source).__name__}; the cluster "
            "profile's offline store reads lake Parquet FileSources (feature_repo/data_sources.py)."
        )
    columns = [*spec["view_keys"], spec["timestamp"], *spec["features"]]
    if spec["created"]:
        columns.append(spec["created"])
    uri = FileSource.get_uri_for_file_path(config.repo_path, source.data_source.path)
    filesystem, path = pafs.FileSystem.from_uri(uri)
    rows = pq.read_table(path, columns=list(dict.fromkeys(columns)), filesystem=filesystem)
    rows = rows.to_pandas()
    rows = rows.rename(
        columns={spec["timestamp"]: _FEATURE_TS}
        | ({spec["created"]: _FEATURE_CREATED} if spec["created"] else {})
    )
    rows[_FEATURE_TS] = _utc_ns(rows[_FEATURE_TS])
    keep = rows[_FEATURE_TS] <= latest
    if view.ttl and view.ttl > timedelta(0):
        keep &= rows[_FEATURE_TS] >= earliest - view.ttl
    rows = rows[keep].rename(columns=dict(zip(spec["view_keys"], spec["entity_keys"], strict=True)))
    # DuckDB's tie-break: of two rows at one time, the newest `created` wins.
    order = [_FEATURE_TS, _FEATURE_CREATED] if spec["created"] else [_FEATURE_TS]
    rows = rows.sort_values(order, kind="stable")
    rows = rows.drop_duplicates([*spec["entity_keys"], _FEATURE_TS], keep="last")
    return rows.drop(columns=[_FEATURE_CREATED], errors="ignore").reset_index(drop=True)


def _join_view(
    batch: pd.DataFrame,
    rows_ref: Any,
    entity_keys: list[str],
    view_keys: list[str],
    entity_ts: str,
    ttl: timedelta | None,
    outputs: dict[str, str],
) -> pd.DataFrame:
    """One block of entity rows with the view's features as of each row's time (in a worker)."""
    import ray

    rows: pd.DataFrame = ray.get(rows_ref)  # the view's rows, shared by every block
    features = list(outputs)
    right = rows[[*entity_keys, _FEATURE_TS, *features]].rename(columns=outputs)
    right = right.assign(**{k: right[k].astype(object) for k in entity_keys})
    named = list(outputs.values())
    batch = batch.drop(columns=[c for c in named if c in batch.columns])
    keyed = batch[entity_keys].notna().all(axis=1).to_numpy() if entity_keys else None
    left = batch if keyed is None else batch[keyed]
    left = left.assign(
        **{entity_ts: _utc_ns(left[entity_ts])}, **{k: left[k].astype(object) for k in entity_keys}
    )
    joined = pd.merge_asof(
        left.sort_values(entity_ts, kind="stable"),
        right,
        left_on=entity_ts,
        right_on=_FEATURE_TS,
        by=entity_keys or None,
        direction="backward",
        allow_exact_matches=True,
    )
    if ttl and ttl > timedelta(0):
        stale = (joined[entity_ts] - joined[_FEATURE_TS]) > ttl
        for column in named:
            joined[column] = joined[column].mask(stale)
    joined = joined.drop(columns=[_FEATURE_TS])
    if keyed is not None and not keyed.all():  # a null key: the row stays, its features null
        joined = pd.concat([joined, batch[~keyed]], ignore_index=True)
    return joined.sort_values(_ROW, kind="stable").reset_index(drop=True)


class _DriverFrameJob(RayRetrievalJob):
    """Feast's Ray retrieval job for a result joined into one frame on the driver
    (`_in_entity_order`). Feast's job turns a pandas result into a Ray dataset and reads it back
    before converting it to Arrow: two more copies of every chunk of examples, through the
    object store (the 1M point-in-time step peaked at 2.3 GB). Here the frame goes to Arrow
    as it is, with the same dtype normalisation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prefer_ray_datasets = False  # `to_df` reads the frame, not a Ray dataset of it

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        result = self._resolve()
        if isinstance(result, pd.DataFrame):
            return normalize_arrow_dtypes(result)
        return super()._to_df_internal(timeout)


def _in_entity_order(dataset: Any) -> pd.DataFrame:
    """The joined rows in the entity frame's order, without the row counter."""
    frame = dataset.to_pandas()
    return frame.sort_values(_ROW, kind="stable").drop(columns=[_ROW]).reset_index(drop=True)


def _utc_ns(values: pd.Series) -> pd.Series:
    """Timestamps in one type on both sides of a join (`merge_asof` needs equal dtypes)."""
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
