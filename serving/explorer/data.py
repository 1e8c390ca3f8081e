"""What the explorer reads from the lake and the feature store, as plain DataFrames.

No Streamlit here: the pages cache and draw these results, the tests call them directly.
Missing inputs raise `NoData`/`ServiceDown` with the command that produces them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feature_repo.definitions import NoFeatureTablesError
from feature_tables.published import read_feature_table
from infra.clock import utc
from infra.lake import Lake, LakeError
from infra.layout import (
    PREDICTIONS,
    manifests_prefix,
    predictions_key,
    predictions_manifest_key,
    quarantine_key,
)
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SALES_TEAMS, STAGES_OPEN, TABLES
from serving.explorer.errors import NoData, ServiceDown
from validation.errors import NotValidatedError
from validation.published import latest_validated_snapshot, read_validated
from validation.report import read_history, report_keys

if TYPE_CHECKING:
    from feast import FeatureStore

NO_ACCOUNT = "(no account)"
TIMESTAMP = "event_timestamp"
# Columns of an open deal the Pipeline page filters and groups by.
DIMENSIONS: dict[str, str] = {
    "sales_agent": "Agent",
    "manager": "Manager",
    "regional_office": "Region",
    "product": "Product",
    "sector": "Sector",
}


# ----------------------------------------------------------------------------- pipeline
def latest_snapshot(lake: Lake) -> str:
    """The newest validated snapshot, or NoData naming the commands that make one."""
    try:
        return latest_validated_snapshot(lake)
    except NotValidatedError as exc:
        raise NoData(
            f"No validated snapshot in {lake.where}: land and validate one with `make pipeline` "
            "(or `make land` then `make validate`)."
        ) from exc
    except LakeError as exc:
        raise ServiceDown(
            f"The data lake cannot be read ({exc}). On the stack profile start it with "
            "`make stack-up`."
        ) from exc


def open_deals(lake: Lake, snapshot: str) -> pd.DataFrame:
    """Open deals (Engaging/Prospecting) of a validated snapshot with their team, account and
    product attributes: everything the Pipeline page slices by."""
    tables = {name: t.to_pandas() for name, t in read_validated(lake, snapshot).items()}
    deals = tables[SALES_PIPELINE]
    deals = deals[deals["deal_stage"].isin(STAGES_OPEN)]
    deals = deals.merge(tables[SALES_TEAMS], on="sales_agent", how="left")
    deals = deals.merge(tables[PRODUCTS], on="product", how="left")
    deals = deals.merge(tables[ACCOUNTS][["account", "sector"]], on="account", how="left")
    deals["sector"] = deals["sector"].fillna(NO_ACCOUNT)
    deals["account"] = deals["account"].fillna(NO_ACCOUNT)
    columns = [
        "opportunity_id",
        "deal_stage",
        "engage_date",
        "sales_agent",
        "manager",
        "regional_office",
        "product",
        "series",
        "sales_price",
        "account",
        "sector",
    ]
    return deals[columns].sort_values("opportunity_id", ignore_index=True)


@dataclass(frozen=True)
class StoredScores:
    """The batch scores the Pipeline page shows (`crm score --all` wrote them)."""

    frame: pd.DataFrame  # opportunity_id, win_probability, expected_value
    snapshot: str  # the snapshot they score
    model: str  # `crm-win-probability v3`
    scored_at: str
    wanted: str  # the snapshot the page shows

    @property
    def stale(self) -> bool:
        return self.snapshot != self.wanted


def stored_scores(lake: Lake, snapshot: str) -> StoredScores | None:
    """The batch scores of `snapshot`, else of the newest earlier snapshot that has some (then
    `stale`), else None. Read from the committed predictions, never from the scoring API."""
    scored = lake.list_partitions(manifests_prefix(PREDICTIONS), "snapshot")
    earlier = [s for s in scored if s <= snapshot]
    if not earlier:
        return None
    chosen = earlier[-1]
    manifest = lake.read_manifest(predictions_manifest_key(chosen))
    table = lake.read_parquet(manifest.objects[predictions_key(chosen)])
    frame = table.select(["opportunity_id", "win_probability", "expected_value"]).to_pandas()
    meta = manifest.metadata
    return StoredScores(
        frame=frame.astype({"opportunity_id": str}),
        snapshot=chosen,
        model=str(meta.get("model", "?")),
        scored_at=str(meta.get("scored_at", "?"))[:19].replace("T", " "),
        wanted=snapshot,
    )


def filter_deals(frame: pd.DataFrame, filters: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows whose value is among the chosen ones, per column; an empty choice keeps all."""
    mask = np.ones(len(frame), dtype=bool)
    for column, chosen in filters.items():
        if chosen:
            mask &= frame[column].isin(list(chosen)).to_numpy()
    return frame[mask]


def breakdown(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """Deals, list value, expected value and mean win probability per value of `by`."""
    grouped = scored.groupby(by, dropna=False).agg(
        deals=("opportunity_id", "count"),
        list_value=("sales_price", "sum"),
        expected_value=("expected_value", "sum"),
        mean_win_probability=("win_probability", "mean"),
    )
    return grouped.sort_values("expected_value", ascending=False).reset_index()


def totals(scored: pd.DataFrame) -> dict[str, float]:
    return {
        "deals": float(len(scored)),
        "list_value": float(scored["sales_price"].sum()),
        "expected_value": float(scored["expected_value"].sum()),
        "mean_win_probability": float(scored["win_probability"].mean())
        if len(scored)
        else float("nan"),
    }


# ----------------------------------------------------------------------------- data quality
def validation_history(lake: Lake) -> pd.DataFrame:
    """Score per validated snapshot (one row per snapshot, the latest run wins)."""
    history = pd.DataFrame(
        read_history(lake), columns=["snapshot", "score", "passed", "validated_at"]
    )
    return history.sort_values("snapshot", ignore_index=True)


def latest_report(lake: Lake) -> dict[str, Any]:
    """The report.json of the newest validated snapshot."""
    history = validation_history(lake)
    if history.empty:
        raise NoData(
            "No validation report yet: land and validate a snapshot with `make land` then "
            "`make validate` (or `make pipeline`)."
        )
    return report(lake, str(history["snapshot"].iloc[-1]))


def report(lake: Lake, snapshot: str) -> dict[str, Any]:
    json_key, _ = report_keys(snapshot)
    if not lake.exists(json_key):
        raise NoData(f"Snapshot {snapshot} has no report: run `make validate`.")
    return dict(lake.read_json(json_key))


def report_html(lake: Lake, snapshot: str) -> bytes:
    return lake.get_bytes(report_keys(snapshot)[1])


def findings_frame(report_body: Mapping[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "severity": f["severity"],
            "blocking": f["blocking"],
            "table": f["table"],
            "rule": f["rule_id"],
            "rows": f["count"],
            "message": f["message"],
        }
        for f in report_body.get("findings", [])
    ]
    columns = ["severity", "blocking", "table", "rule", "rows", "message"]
    return pd.DataFrame(rows, columns=columns)


def row_counts_frame(report_body: Mapping[str, Any]) -> pd.DataFrame:
    counts = report_body.get("row_counts", {})
    frame = pd.DataFrame.from_dict(
        counts, orient="index", columns=["in", "validated", "quarantined"]
    )
    return frame.rename_axis("table").reset_index()


def quarantined_rows(lake: Lake, snapshot: str) -> dict[str, pd.DataFrame]:
    """Quarantined rows per table, with the `_reasons` column saying which rules they broke."""
    found: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        key = quarantine_key(name, snapshot)
        if lake.exists(key):
            found[name] = lake.read_parquet(key).to_pandas()
    return found


# ----------------------------------------------------------------------------- feature store
def feature_views_frame(store: FeatureStore) -> pd.DataFrame:
    """Every registered view (stored and on-demand) with its entities, features and tags."""
    rows = [
        {
            "view": view.name,
            "kind": "stored",
            "entities": ", ".join(c.name for c in view.entity_columns),
            "features": len(view.features),
            "ttl": str(view.ttl),
            "online": view.online,
            "grain": view.tags.get("grain", ""),
            "description": view.description,
        }
        for view in store.list_feature_views()
    ]
    rows += [
        {
            "view": view.name,
            "kind": "on demand",
            "entities": "(request)",
            "features": len(view.features),
            "ttl": "",
            "online": True,
            "grain": view.tags.get("grain", ""),
            "description": view.description,
        }
        for view in store.list_on_demand_feature_views()
    ]
    if not rows:
        raise NoData("No feature views are registered: run `make materialize` (feast apply).")
    return pd.DataFrame(rows).sort_values(["kind", "view"], ignore_index=True)


def feature_services_frame(store: FeatureStore) -> pd.DataFrame:
    rows = [
        {
            "service": service.name,
            "view": projection.name,
            "features": ", ".join(f.name for f in projection.features),
        }
        for service in store.list_feature_services()
        for projection in service.feature_view_projections
    ]
    return pd.DataFrame(rows, columns=["service", "view", "features"])


def freshness(lake: Lake, store: FeatureStore) -> pd.DataFrame:
    """Per stored view: rows and newest event time offline, and how far online is loaded.

    Data time, not wall time: the dataset ends in the past, so "fresh" means the online store
    holds everything up to the newest offline row (`online_lag` of zero).
    """
    rows = []
    for view in store.list_feature_views():
        try:
            table: pd.DataFrame | None = read_feature_table(lake, view.name).to_pandas()
        except NoFeatureTablesError:
            table = None
        newest = utc(table[TIMESTAMP].max()) if table is not None and len(table) else None
        loaded = max((utc(end) for _, end in view.materialization_intervals), default=None)
        lag = newest - loaded if newest is not None and loaded is not None else None
        rows.append(
            {
                "view": view.name,
                "grain": view.tags.get("grain", ""),
                "rows": 0 if table is None else len(table),
                "entities": 0 if table is None else _entity_count(table, view.entity_columns),
                "newest_event": newest,
                "online_loaded_to": loaded,
                "online_lag": _lag_text(lag, loaded),
            }
        )
    return pd.DataFrame(rows)


def _entity_count(table: pd.DataFrame, columns: Sequence[Any]) -> int:
    keys = [c.name for c in columns if c.name in table]
    return int(table[keys].drop_duplicates().shape[0]) if keys else 0


def _lag_text(lag: timedelta | None, loaded: datetime | None) -> str:
    if loaded is None:
        return "never materialised: run `make materialize`"
    if lag is None or lag <= timedelta(0):
        return "up to date"
    return f"behind by {lag}: run `make materialize`"


def feature_table(lake: Lake, view: str) -> pd.DataFrame:
    """The view's rows in the committed feature build (read through the features manifest)."""
    try:
        return read_feature_table(lake, view).to_pandas()
    except NoFeatureTablesError as exc:
        raise NoData(f"No feature table for {view}: {exc}") from exc


def latest_rows(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Each entity's newest row: the values the online store serves now."""
    ordered = frame.sort_values(TIMESTAMP)
    return ordered.drop_duplicates(list(keys), keep="last").reset_index(drop=True)


def numeric_columns(frame: pd.DataFrame, keys: Sequence[str] = ()) -> list[str]:
    return [
        c
        for c in frame.columns
        if c not in keys
        and c != TIMESTAMP
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def histogram(values: pd.Series, bins: int = 20) -> pd.DataFrame:
    """Counts per equal-width bin, with each bin's edges (`bin` to `bin_end`)."""
    clean = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if clean.size == 0:
        return pd.DataFrame({"bin": [], "bin_end": [], "count": []})
    counts, edges = np.histogram(clean, bins=bins)
    return pd.DataFrame({"bin": edges[:-1], "bin_end": edges[1:], "count": counts})


def entity_keys(lake: Lake, view: str, join_key: str) -> list[str]:
    return sorted(feature_table(lake, view)[join_key].dropna().astype(str).unique().tolist())


def point_in_time(
    store: FeatureStore, lake: Lake, view: str, join_key: str, key: str, at: datetime
) -> pd.DataFrame:
    """One entity's features as Feast's point-in-time join serves them at `at`, with the
    event time of the offline row they came from (newest row at or before `at`, within TTL)."""
    feature_view = store.get_feature_view(view)
    entity_df = pd.DataFrame({join_key: [key], TIMESTAMP: [pd.Timestamp(utc(at))]})
    refs = [f"{view}:{f.name}" for f in feature_view.features]
    served = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    offline = feature_table(lake, view)
    rows = offline[(offline[join_key].astype(str) == key)]
    rows = rows[pd.to_datetime(rows[TIMESTAMP], utc=True) <= pd.Timestamp(utc(at))]
    source_ts = utc(rows[TIMESTAMP].max()) if len(rows) else None
    values = served.iloc[0] if len(served) else pd.Series(dtype=object)
    return pd.DataFrame(
        {
            "feature": [f.name for f in feature_view.features],
            "value": [display_value(values.get(f.name)) for f in feature_view.features],
            "row_event_timestamp": [source_ts] * len(feature_view.features),
        }
    )


def display_value(value: Any) -> str:
    """A uniform text column for mixed feature types (Arrow refuses mixed object columns)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "null"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)
