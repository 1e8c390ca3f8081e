"""Validated snapshot -> feature tables on the lake: the plain function behind the features flow."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from feature_tables.compute import compute_feature_tables, write_feature_tables
from feature_tables.errors import FeatureTablesError
from infra.lake import Lake
from infra.layout import validated_manifest_key
from ingestion.tables import SALES_PIPELINE
from validation.published import latest_validated_snapshot, read_validated


def snapshot_as_of(snapshot: str, pipeline: pa.Table) -> date:
    """The day features run up to: the snapshot date, but never past the last fact in the data.

    A snapshot landed today of a dataset that ends in 2017 has nothing new after 2017; running
    daily rows on to today would only repeat the last row (and stamp Prospecting deals today).
    """
    try:
        day = date.fromisoformat(snapshot)
    except ValueError as exc:
        raise FeatureTablesError(f"Snapshot {snapshot!r} is not a YYYY-MM-DD date.") from exc
    last = [
        pc.max(pipeline.column(c)).as_py()
        for c in ("engage_date", "close_date")
        if pipeline.num_rows
    ]
    last_fact = max((d for d in last if d is not None), default=None)
    return min(day, last_fact) if last_fact else day


def build_feature_tables(lake: Lake, snapshot: str | None = None) -> dict[str, int]:
    """Compute every feature view from a validated snapshot (latest by default) and publish
    them as one build under the features manifest; rows per view."""
    snapshot = snapshot or latest_validated_snapshot(lake)
    tables = read_validated(lake, snapshot)
    as_of_end = snapshot_as_of(snapshot, tables[SALES_PIPELINE])
    metadata = {
        "snapshot": snapshot,
        "as_of_end": as_of_end.isoformat(),
        "validated_txid": lake.read_manifest(validated_manifest_key(snapshot)).txid,
    }
    return write_feature_tables(lake, compute_feature_tables(tables, as_of_end=as_of_end), metadata)
