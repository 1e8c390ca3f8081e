"""Point-in-time entity feature tables, computed with DuckDB SQL over the validated snapshot.

Time rule: every fact dated day `d` (an engagement, a close) becomes known at the *end* of `d`, so
rows describing day `d` carry `event_timestamp = d 23:59:59 UTC`. A deal closed on `d` therefore
counts in the row of `d` and later rows, never earlier ones, and a label timestamped at the start
of its engage day (00:00) can never see its own outcome, even when it closed the same day.

Windows: `<stat>_30d` on day `t` covers days `t-29 .. t` (30 calendar days including `t`); likewise
90d and 365d; `_all` covers everything up to and including `t`.

Win rates are smoothed toward the global win rate as of the same day:
`win_rate = (won + K * global) / (closed + K)` with `K = SMOOTHING_K = 10`, where
`global = global_won_all / global_closed_all` over every deal closed up to `t`, or
`GLOBAL_PRIOR = 0.5` before anything has closed. A new entity thus starts at the global rate and
moves toward its own rate as deals close, instead of jumping to 0 or 1 after one deal.

Open pipeline: a deal is open from its engage date up to the day before its close date (or up to
`as_of_end` when still open); Prospecting deals have no engage date and are not in the pipeline.
`open_pipeline_value` is the sum of the products' list prices (`products.sales_price`).

Pair stats (`product_sector_daily_stats`): the same stats per (product, account sector) cell,
because a product's fit differs by sector and neither per-entity rate shows it. The grid is every
catalogue/pipeline product x every sector of the accounts table; deals without an account (open
deals only) have no sector and count in no cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from feature_repo.entities import ACCOUNT, OPPORTUNITY_ID, PRODUCT, SALES_AGENT, SECTOR
from feature_repo.features.account import account_daily_stats_fv, account_profile_fv
from feature_repo.features.opportunity import opportunity_fv
from feature_repo.features.product import product_daily_stats_fv, product_profile_fv
from feature_repo.features.product_sector import product_sector_daily_stats_fv
from feature_repo.features.sales_agent import sales_agent_daily_stats_fv, sales_agent_profile_fv
from feature_repo.features.stats import ALL_TIME, GLOBAL_PRIOR, SMOOTHING_K, WINDOW_DAYS
from feature_tables.errors import FeatureTablesError
from infra.lake import Lake
from infra.layout import FEATURES_CURRENT_KEY, feature_key, features_manifest_key
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SALES_TEAMS

# Who moves `features/_current.json` holds this lease (two builds finishing together).
CURRENT_LEASE = "features/current"
# Static profiles are valid "forever": stamped before every date in the data.
PROFILE_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
END_OF_DAY = "INTERVAL '23:59:59'"

# View -> its key column, for the views this module computes (names from the Feast repo).
STATS_VIEWS: dict[str, str] = {
    sales_agent_daily_stats_fv.name: SALES_AGENT,
    account_daily_stats_fv.name: ACCOUNT,
    product_daily_stats_fv.name: PRODUCT,
}
PROFILE_VIEWS: dict[str, str] = {
    sales_agent_profile_fv.name: SALES_AGENT,
    account_profile_fv.name: ACCOUNT,
    product_profile_fv.name: PRODUCT,
}
# Stats per combination of entities (view -> its key columns, in order).
PAIR_STATS_VIEWS: dict[str, tuple[str, ...]] = {
    product_sector_daily_stats_fv.name: (PRODUCT, SECTOR)
}
OPPORTUNITY_VIEW = opportunity_fv.name
VIEWS: tuple[str, ...] = (*STATS_VIEWS, *PAIR_STATS_VIEWS, *PROFILE_VIEWS, OPPORTUNITY_VIEW)

# Where each entity's members are listed besides the pipeline.
_ENTITY_TABLES = {
    SALES_AGENT: SALES_TEAMS,
    ACCOUNT: ACCOUNTS,
    PRODUCT: PRODUCTS,
    SECTOR: ACCOUNTS,
}


def compute_feature_tables(
    tables: Mapping[str, pd.DataFrame | pa.Table], *, as_of_end: date | None = None
) -> dict[str, pd.DataFrame]:
    """Every feature view's rows from one validated snapshot (view name -> DataFrame).

    `as_of_end` is the snapshot date: daily rows run up to it and facts dated later are ignored.
    It defaults to the last engage/close date in the data.
    """
    missing = [t for t in (SALES_PIPELINE, ACCOUNTS, PRODUCTS, SALES_TEAMS) if t not in tables]
    if missing:
        raise FeatureTablesError(
            f"Feature tables need the tables {missing}: pass all four validated tables "
            "(read them with lake.read_published(validated_manifest_key(snapshot), ...))."
        )
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        _load(con, tables)
        start, last = con.execute(
            "SELECT least(min(engage_date), min(close_date)), "
            "greatest(max(engage_date), max(close_date)) FROM deals"
        ).fetchone() or (None, None)
        if start is None:
            raise FeatureTablesError(
                "sales_pipeline has no engage or close dates: nothing to build features from; "
                "check that the validated snapshot is not empty."
            )
        end = as_of_end or last
        if end < start:
            raise FeatureTablesError(
                f"as_of_end {end} is before the first date in the data ({start}): "
                "pass a later snapshot date."
            )
        _global_rates(con, start, end)
        out: dict[str, pd.DataFrame] = {}
        for view, key in STATS_VIEWS.items():
            out[view] = _fetch(con, _stats_sql((key,), start, end), [key])
        for view, keys in PAIR_STATS_VIEWS.items():
            out[view] = _fetch(con, _stats_sql(keys, start, end), list(keys))
        out.update(_profiles(con))
        out[OPPORTUNITY_VIEW] = _fetch(con, _opportunity_sql(end), [OPPORTUNITY_ID])
        return out
    finally:
        con.close()


def write_feature_tables(
    lake: Lake,
    tables: Mapping[str, pd.DataFrame],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Publish every view as snapshot `metadata["snapshot"]`'s build; returns rows per view.

    One commit for all views of the snapshot (`Lake.publish`): a reader, Feast included, sees
    the whole previous build or the whole new one, never views from two snapshots. Then, if no
    newer snapshot was built before, `features/_current.json` moves to this build: Feast's
    sources follow it (a backfill of older snapshots leaves it alone). A build without a named
    snapshot is named after its data's last day. Numbers must be finite.
    """
    for view, frame in tables.items():
        _check_finite(view, frame)
    snapshot = str((metadata or {}).get("snapshot") or _last_day(tables))
    rows = {view: len(frame) for view, frame in tables.items()}
    manifest = lake.publish(
        features_manifest_key(snapshot),
        {
            feature_key(view, snapshot): pa.Table.from_pandas(frame, preserve_index=False)
            for view, frame in tables.items()
        },
        {
            **(metadata or {}),
            "snapshot": snapshot,
            "rows": rows,
            "built_at": datetime.now(UTC).isoformat(),
        },
    )
    with lake.lease(CURRENT_LEASE):
        current = lake.read_json(FEATURES_CURRENT_KEY) if lake.exists(FEATURES_CURRENT_KEY) else {}
        if str(current.get("snapshot", "")) <= snapshot:
            lake.write_json(FEATURES_CURRENT_KEY, {"snapshot": snapshot, "txid": manifest.txid})
    return rows


def _last_day(tables: Mapping[str, pd.DataFrame]) -> str:
    days = [
        pd.Timestamp(frame["event_timestamp"].max())
        for frame in tables.values()
        if len(frame) and "event_timestamp" in frame
    ]
    if not days:
        raise FeatureTablesError("Empty feature tables without a snapshot name: nothing to write.")
    return max(days).date().isoformat()


def _check_finite(view: str, frame: pd.DataFrame) -> None:
    """No infinity or NaN-from-arithmetic reaches Feast (validation refuses such inputs)."""
    for column in frame.columns:
        if not pd.api.types.is_float_dtype(frame[column]):
            continue
        bad = np.isinf(frame[column].to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = frame.iloc[int(np.flatnonzero(bad)[0])]
            raise FeatureTablesError(
                f"Feature view {view}: column {column} is {row[column]} for "
                f"{frame.columns[0]}={row.iloc[0]!r} ({int(bad.sum())} row(s)); nothing was "
                "published. Validate the snapshot again (`crm validate`): its contracts refuse "
                "non-finite inputs."
            )


# --- SQL -------------------------------------------------------------------------------------
def _load(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame | pa.Table]) -> None:
    for name in (SALES_PIPELINE, ACCOUNTS, PRODUCTS, SALES_TEAMS):
        data = tables[name]
        con.register(f"src_{name}", data)
    con.execute(
        f"""
        CREATE TEMP TABLE deals AS
        SELECT CAST(p.opportunity_id AS VARCHAR) AS opportunity_id,
               p.sales_agent, p.product, p.account, a.sector, p.deal_stage,
               CAST(p.engage_date AS DATE) AS engage_date,
               CAST(p.close_date AS DATE) AS close_date,
               CAST(COALESCE(pr.sales_price, 0) AS BIGINT) AS list_price,
               p.deal_stage IN ('Won', 'Lost') AND p.close_date IS NOT NULL AS is_closed
        FROM src_{SALES_PIPELINE} p
        LEFT JOIN (SELECT DISTINCT product, sales_price FROM src_{PRODUCTS}) pr
          ON pr.product = p.product
        LEFT JOIN (SELECT DISTINCT ON (account) account, sector FROM src_{ACCOUNTS}
                   WHERE account IS NOT NULL) a
          ON a.account = p.account
        """
    )


def _days_sql(start: date, end: date) -> str:
    return (
        f"SELECT CAST(unnest(generate_series(DATE '{start}', DATE '{end}', INTERVAL 1 DAY)) "
        "AS DATE) AS day"
    )


def _global_rates(con: duckdb.DuckDBPyConnection, start: date, end: date) -> None:
    """Global win rate as of each day, over every closed deal (whatever its entities)."""
    con.execute(
        f"""
        CREATE TEMP TABLE global_rate AS
        WITH daily AS (
            SELECT close_date AS day, count(*) AS closed,
                   count(*) FILTER (WHERE deal_stage = 'Won') AS won
            FROM deals WHERE is_closed GROUP BY close_date
        ), cum AS (
            SELECT d.day,
                   CAST(sum(coalesce(x.closed, 0)) OVER (ORDER BY d.day) AS BIGINT) AS closed,
                   CAST(sum(coalesce(x.won, 0)) OVER (ORDER BY d.day) AS BIGINT) AS won
            FROM ({_days_sql(start, end)}) d LEFT JOIN daily x USING (day)
        )
        SELECT day, CASE WHEN closed = 0 THEN {GLOBAL_PRIOR}
                         ELSE CAST(won AS DOUBLE) / closed END AS rate
        FROM cum
        """
    )


def _entities_sql(keys: tuple[str, ...]) -> str:
    """Every member (or combination of members) of the keys: listed ones and those in deals."""
    parts = [
        f"(SELECT {k} FROM src_{_ENTITY_TABLES[k]} WHERE {k} IS NOT NULL "
        f"UNION SELECT {k} FROM deals WHERE {k} IS NOT NULL) AS e_{k}"
        for k in keys
    ]
    return f"SELECT {', '.join(keys)} FROM {' CROSS JOIN '.join(parts)}"


def _stats_sql(keys: tuple[str, ...], start: date, end: date) -> str:
    cols = ", ".join(keys)
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    same = " AND ".join(f"x.{k} = e.{k}" for k in keys)
    frames = {f"{w}d": f"ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW" for w in WINDOW_DAYS}
    frames[ALL_TIME] = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    window_defs = ", ".join(
        f"w_{name} AS (PARTITION BY {cols} ORDER BY day {frame})" for name, frame in frames.items()
    )
    sums = []
    for name in frames:
        sums += [
            f"CAST(sum(closed) OVER w_{name} AS BIGINT) AS closed_{name}",
            f"CAST(sum(won) OVER w_{name} AS BIGINT) AS won_{name}",
        ]
    rates = [
        f"(won_{n} + {SMOOTHING_K} * g.rate) / (closed_{n} + {SMOOTHING_K}) AS win_rate_{n}"
        for n in frames
    ]
    columns = []
    for n in frames:
        columns += [f"closed_{n}", f"won_{n}", f"win_rate_{n}"]
    return f"""
        WITH ents AS ({_entities_sql(keys)}), events AS (
            SELECT {cols}, close_date AS day, 1 AS closed,
                   CASE WHEN deal_stage = 'Won' THEN 1 ELSE 0 END AS won,
                   0 AS engaged, 0 AS open_delta, CAST(0 AS BIGINT) AS value_delta
            FROM deals WHERE {not_null} AND is_closed
            UNION ALL
            SELECT {cols}, engage_date, 0, 0, 1, 1, list_price
            FROM deals WHERE {not_null} AND engage_date IS NOT NULL
            UNION ALL
            SELECT {cols}, close_date, 0, 0, 0, -1, -list_price
            FROM deals
            WHERE {not_null} AND engage_date IS NOT NULL AND close_date IS NOT NULL
        ), daily AS (
            SELECT {cols}, day, sum(closed) AS closed, sum(won) AS won, sum(engaged) AS engaged,
                   sum(open_delta) AS open_delta, sum(value_delta) AS value_delta
            FROM events GROUP BY {cols}, day
        ), grid AS (
            SELECT {", ".join(f"e.{k}" for k in keys)}, d.day,
                   coalesce(x.closed, 0) AS closed, coalesce(x.won, 0) AS won,
                   coalesce(x.engaged, 0) AS engaged, coalesce(x.open_delta, 0) AS open_delta,
                   coalesce(x.value_delta, 0) AS value_delta
            FROM ents e CROSS JOIN ({_days_sql(start, end)}) d
            LEFT JOIN daily x ON {same} AND x.day = d.day
        ), sums AS (
            SELECT {cols}, day, {", ".join(sums)},
                   CAST(sum(open_delta) OVER w_all AS BIGINT) AS open_pipeline_count,
                   CAST(sum(value_delta) OVER w_all AS BIGINT) AS open_pipeline_value,
                   CAST(sum(engaged) OVER w_30d AS BIGINT) AS engaged_30d
            FROM grid
            WINDOW {window_defs}
        ), rated AS (
            SELECT s.*, {", ".join(rates)}
            FROM sums s JOIN global_rate g USING (day)
        )
        SELECT {cols}, CAST(day AS TIMESTAMP) + {END_OF_DAY} AS event_timestamp,
               {", ".join(columns)}, open_pipeline_count, open_pipeline_value, engaged_30d
        FROM rated
    """


def _profiles(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    ts = f"TIMESTAMP '{PROFILE_TIMESTAMP:%Y-%m-%d %H:%M:%S}'"
    queries = {
        account_profile_fv.name: f"""
            SELECT DISTINCT ON (account) account, {ts} AS event_timestamp, sector,
                   CAST(revenue AS DOUBLE) AS revenue, CAST(employees AS BIGINT) AS employees,
                   CAST(year_established AS BIGINT) AS year_established, office_location,
                   coalesce(trim(subsidiary_of), '') <> '' AS has_parent
            FROM src_{ACCOUNTS} WHERE account IS NOT NULL""",
        product_profile_fv.name: f"""
            SELECT DISTINCT ON (product) product, {ts} AS event_timestamp, series,
                   CAST(sales_price AS BIGINT) AS sales_price
            FROM src_{PRODUCTS} WHERE product IS NOT NULL""",
        sales_agent_profile_fv.name: f"""
            SELECT DISTINCT ON (sales_agent) sales_agent, {ts} AS event_timestamp, manager,
                   regional_office
            FROM src_{SALES_TEAMS} WHERE sales_agent IS NOT NULL""",
    }
    return {view: _fetch(con, sql, [PROFILE_VIEWS[view]]) for view, sql in queries.items()}


def _opportunity_sql(end: date) -> str:
    """One row when a deal is engaged (stage Engaging) and one when it closes (final stage).

    Deals closed on their engage day get only the closing row (both facts share a timestamp).
    `sector` is the account's (null without an account): the join key of the pair stats.
    Deals without an engage date (Prospecting) are known as of the snapshot: one row at
    `as_of_end`. Never close_value or close_date: they are the label.
    """
    cols = "opportunity_id, sales_agent, account, product, sector, "
    engage_ts = "CAST(CAST(engage_date AS TIMESTAMP) AS TIMESTAMPTZ)"
    return f"""
        SELECT {cols} CAST(engage_date AS TIMESTAMP) + {END_OF_DAY} AS event_timestamp,
               {engage_ts} AS engage_date, 'Engaging' AS deal_stage
        FROM deals
        WHERE engage_date IS NOT NULL AND engage_date <= DATE '{end}'
          AND NOT (is_closed AND close_date = engage_date)
        UNION ALL
        SELECT {cols} CAST(close_date AS TIMESTAMP) + {END_OF_DAY}, {engage_ts}, deal_stage
        FROM deals WHERE is_closed AND close_date <= DATE '{end}'
        UNION ALL
        SELECT {cols} CAST(DATE '{end}' AS TIMESTAMP) + {END_OF_DAY}, {engage_ts}, deal_stage
        FROM deals WHERE engage_date IS NULL AND NOT is_closed
    """


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, keys: list[str]) -> pd.DataFrame:
    con.execute("SET TimeZone = 'UTC'")
    order = ", ".join([*keys, "event_timestamp"])
    table = con.sql(f"SELECT * FROM ({sql}) ORDER BY {order}").arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    frame = table.to_pandas()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            series = frame[column]
            if series.dt.tz is None:
                series = series.dt.tz_localize("UTC")
            frame[column] = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return frame
