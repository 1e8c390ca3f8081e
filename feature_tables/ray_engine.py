"""Feast's Ray compute engine, materialising by data time rather than by the wall clock.

Feast 0.67's Ray engine filters the rows it materialises by the view's TTL counted back from
*now*: a view with a TTL (the daily stats views: 1 day) loses every row older than a day
before the wall clock, so a snapshot dated in the past (this project's data, a backfill, a
late batch) is written as nothing, without an error. Feast's local engine writes the newest
row of every entity in the window it is given, whatever its age, and lets the online read
decide; `feature_tables.store.materialize` chooses the window by data time.

This subclass builds the same execution plan (read, filter, dedup, write, all on Ray) with the
filter's TTL left out when materialising; historical retrieval keeps Feast's own plan.
`tests/pipeline/test_ray_profile.py` holds its online values equal to the local engine's.

Select it in a feature_store.yaml with
`batch_engine: {type: feature_tables.ray_engine.CRMRayComputeEngine}`.
"""

from __future__ import annotations

from typing import Any, Literal

from feast.infra.common.materialization_job import (
    MaterializationJob,
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.dag.node import DAGNode
from feast.infra.compute_engines.ray.compute import RayComputeEngine
from feast.infra.compute_engines.ray.config import RayComputeEngineConfig
from feast.infra.compute_engines.ray.feature_builder import RayFeatureBuilder
from feast.infra.compute_engines.ray.job import RayMaterializationJob
from feast.infra.compute_engines.ray.nodes import RayFilterNode
from feast.infra.registry.base_registry import BaseRegistry

from infra.ray_runtime import connect
from infra.settings import get_settings

_EngineType = Literal["feature_tables.ray_engine.CRMRayComputeEngine"]


class CRMRayComputeEngineConfig(RayComputeEngineConfig):
    """Feast's Ray compute engine options, under this engine's type name."""

    # Feast finds an engine by this name; pydantic narrows the base's Literal, which mypy refuses.
    type: _EngineType = "feature_tables.ray_engine.CRMRayComputeEngine"  # type: ignore[assignment]


class _MaterializationBuilder(RayFeatureBuilder):
    """Feast's Ray plan; when materialising, its filter keeps custom filters but not the TTL."""

    def build_filter_node(self, view: Any, input_node: DAGNode) -> DAGNode:
        if self.is_historical_retrieval:
            return super().build_filter_node(view, input_node)
        node = RayFilterNode(
            name="filter",
            column_info=self.get_column_info(view),
            config=self.config,
            ttl=None,
            filter_condition=getattr(view, "filter", None),
        )
        node.add_input(input_node)
        self.nodes.append(node)
        return node


class CRMRayComputeEngine(RayComputeEngine):
    """`RayComputeEngine` that materialises every row in the window (module docstring)."""

    def _ensure_ray_initialized(self) -> None:
        """Start or join Ray the profile's way (bounded, `infra.ray_runtime`) first."""
        connect(get_settings())
        super()._ensure_ray_initialized()

    def _materialize_one(
        self,
        registry: BaseRegistry,
        task: MaterializationTask,
        from_offline_store: bool = False,
        **kwargs: Any,
    ) -> MaterializationJob:
        if from_offline_store:
            return super()._materialize_one(registry, task, from_offline_store, **kwargs)
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        try:
            context = self.get_execution_context(registry, task)
            plan = _MaterializationBuilder(registry, task.feature_view, task, self.config).build()
            result = plan.execute(context)
        except Exception as exc:  # Feast's contract: the job carries the error, the caller raises
            return RayMaterializationJob(
                job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc
            )
        return RayMaterializationJob(
            job_id=job_id, status=MaterializationJobStatus.SUCCEEDED, result=result
        )
