"""Feast's local compute engine, writing PostgreSQL online tables from Arrow by column.

Feast 0.67's local engine reads a view's rows in the window, keeps each entity's newest, and
then, per batch of `materialization.online_write_batch_size` rows, converts every row into
protobuf objects (`_convert_arrow_to_proto`) for the online store's `online_write_batch`. That
per-value Python was most of a materialisation at a million opportunities (docs/scale.md).

This engine is Feast's local engine with one node changed: the output. When the online store
is ours (`feature_tables.postgres_online`), each batch goes to its `online_write_arrow`, which
encodes the same bytes a column at a time (`feature_tables.online_rows`) and streams them with
COPY through the store's staging table and single upsert. Anything else (another online store,
an on-demand view, a batch the column encoder declines) takes Feast's own path, unchanged.
`FeatureStore.materialize` still drives it, so Feast records the materialisation intervals.

Select it in a feature_store.yaml with
`batch_engine: {type: feature_tables.bulk_engine.BulkLocalComputeEngine}`.
"""

from __future__ import annotations

from typing import Any, Literal

from feast.infra.common.materialization_job import (
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import (
    LocalComputeEngine,
    LocalComputeEngineConfig,
)
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.registry.base_registry import BaseRegistry
from feast.utils import _convert_arrow_to_proto
from pydantic import Field

from feature_tables.postgres_online import PostgreSQLOnlineStore

ENGINE_TYPE = f"{__name__}.BulkLocalComputeEngine"
_EngineType = Literal["feature_tables.bulk_engine.BulkLocalComputeEngine"]


class BulkLocalComputeEngineConfig(LocalComputeEngineConfig):
    """Feast's local compute engine options, under this engine's type name."""

    # Feast finds an engine by this name; pydantic narrows the base's Literal, which mypy refuses.
    type: _EngineType = "feature_tables.bulk_engine.BulkLocalComputeEngine"  # type: ignore[assignment]
    write_concurrency: int = Field(default=1, ge=1)
    """Batches of a view encoded and upserted at once, each on its own connection."""


class _BulkOutputNode(LocalOutputNode):
    """Feast's output node; online batches for our PostgreSQL store are written from Arrow."""

    def __init__(self, *args: Any, write_concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_concurrency = write_concurrency

    def execute(self, context: ExecutionContext) -> ArrowTableValue:
        view, online, config = self.feature_view, context.online_store, context.repo_config
        if not (view.online and isinstance(online, PostgreSQLOnlineStore)) or _on_demand(view):
            return super().execute(context)
        table = self.get_single_table(context).data
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        if table.num_rows == 0:
            return output
        if not online.online_write_arrow(
            config, view, table, self.write_concurrency
        ):  # else Feast's path, as Feast
            join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
            size = config.materialization_config.online_write_batch_size
            for batch in [table] if size is None else table.to_batches(max_chunksize=size):
                rows = _convert_arrow_to_proto(batch, view, join_keys)
                online.online_write_batch(config, view, rows, progress=None)
        if view.offline:
            context.offline_store.offline_write_batch(
                config=config, feature_view=view, table=table, progress=lambda _: None
            )
        return output


def _on_demand(view: Any) -> bool:
    """Feast's own test for an on-demand view (`feast.utils._convert_arrow_to_proto`)."""
    return (
        getattr(view, "source_request_sources", None) is not None
        or getattr(view, "source_feature_view_projections", None) is not None
    )


class _BulkFeatureBuilder(LocalFeatureBuilder):
    def __init__(self, *args: Any, write_concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_concurrency = write_concurrency

    def build_output_nodes(self, view: Any, input_node: Any) -> Any:
        node = _BulkOutputNode(
            "output",
            self.dag_root.view,
            inputs=[input_node],
            write_concurrency=self.write_concurrency,
        )
        self.nodes.append(node)
        return node


class BulkLocalComputeEngine(LocalComputeEngine):
    """`LocalComputeEngine` whose PostgreSQL online writes skip the per-row protos."""

    def __init__(self, write_concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_concurrency = write_concurrency

    def _materialize_one(
        self, registry: BaseRegistry, task: MaterializationTask, **kwargs: Any
    ) -> LocalMaterializationJob:
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        backend = self._get_backend(context)
        try:
            builder = _BulkFeatureBuilder(
                registry, task, backend=backend, write_concurrency=self.write_concurrency
            )
            builder.build().execute(context)
        except Exception as exc:  # Feast's contract: the job carries the error, the caller raises
            return LocalMaterializationJob(
                job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc
            )
        return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
