"""A slow, obviously-correct reference for the feature tables: plain Python loops over deals.

It re-derives one row of a daily stats view straight from the definitions in
`feature_tables.compute` (no cumulative sums, no windows), so the fast SQL can be checked against
it row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from feature_repo.features.stats import GLOBAL_PRIOR, SMOOTHING_K, WINDOW_DAYS


@dataclass(frozen=True)
class Deal:
    opportunity_id: str
    sales_agent: str | None
    account: str | None
    product: str | None
    deal_stage: str
    engage_date: date | None
    close_date: date | None
    sector: str | None = None  # the account's sector; None without an account


def deals_from(pipeline: pd.DataFrame, accounts: pd.DataFrame | None = None) -> list[Deal]:
    """Deals of the pipeline; with `accounts`, each carries its account's sector."""
    sectors: dict[str, str] = {}
    if accounts is not None:
        sectors = dict(zip(accounts["account"], accounts["sector"], strict=True))

    def as_date(value: object) -> date | None:
        if value is None or (not isinstance(value, date) and pd.isna(value)):
            return None
        return pd.Timestamp(value).date()

    def as_str(value: object) -> str | None:
        return None if value is None or (isinstance(value, float) and pd.isna(value)) else value

    return [
        Deal(
            str(row.opportunity_id),
            as_str(row.sales_agent),
            as_str(row.account),
            as_str(row.product),
            row.deal_stage,
            as_date(row.engage_date),
            as_date(row.close_date),
            sectors.get(as_str(row.account)),
        )
        for row in pipeline.itertuples(index=False)
    ]


def is_closed(deal: Deal) -> bool:
    return deal.deal_stage in ("Won", "Lost") and deal.close_date is not None


def global_rate(deals: list[Deal], day: date) -> float:
    closed = won = 0
    for deal in deals:
        if is_closed(deal) and deal.close_date <= day:
            closed += 1
            won += deal.deal_stage == "Won"
    return GLOBAL_PRIOR if closed == 0 else won / closed


def reference_stats_row(
    deals: list[Deal],
    prices: dict[str, int],
    key: str | tuple[str, ...],
    entity: object,
    day: date,
) -> dict[str, object]:
    """The stats of `entity` (a value of column `key`) as known at the end of `day`.

    For a pair view, `key` is the tuple of key columns and `entity` the tuple of their values.
    """
    keys = key if isinstance(key, tuple) else (key,)
    values = entity if isinstance(entity, tuple) else (entity,)
    mine = [d for d in deals if tuple(getattr(d, k) for k in keys) == values]
    g = global_rate(deals, day)
    row: dict[str, object] = {}
    windows: list[tuple[str, date | None]] = [
        (f"{w}d", day - timedelta(days=w)) for w in WINDOW_DAYS
    ]
    windows.append(("all", None))
    for name, after in windows:
        closed = won = 0
        for deal in mine:
            if not is_closed(deal) or deal.close_date > day:
                continue
            if after is not None and deal.close_date <= after:
                continue
            closed += 1
            won += deal.deal_stage == "Won"
        row[f"closed_{name}"] = closed
        row[f"won_{name}"] = won
        row[f"win_rate_{name}"] = (won + SMOOTHING_K * g) / (closed + SMOOTHING_K)
    open_count = open_value = engaged = 0
    for deal in mine:
        if deal.engage_date is None:
            continue
        if deal.engage_date <= day and (deal.close_date is None or day < deal.close_date):
            open_count += 1
            open_value += prices.get(deal.product, 0)
        if day - timedelta(days=30) < deal.engage_date <= day:
            engaged += 1
    row["open_pipeline_count"] = open_count
    row["open_pipeline_value"] = open_value
    row["engaged_30d"] = engaged
    return row


def random_tables(opportunities: int, seed: int) -> dict[str, pd.DataFrame]:
    """Small CRM-shaped tables with every case the features must handle.

    Open deals (Engaging with no close date, Prospecting with no dates), null accounts on open
    deals, deals closed on their engage day, and agents/accounts with no deals at all.
    """
    rng = np.random.default_rng(seed)
    agents = [f"agent_{i:02d}" for i in range(12)]
    accounts = [f"account_{i:02d}" for i in range(20)]
    products = {"GTX Basic": 550, "GTX Pro": 4821, "MG Special": 55, "GTK 500": 26768}
    first, last = date(2016, 10, 20), date(2017, 12, 31)
    span = (last - first).days
    engage = np.array(
        [first + timedelta(days=int(d)) for d in rng.integers(0, span, opportunities)]
    )
    duration = rng.integers(0, 140, opportunities)
    stage = rng.choice(
        ["Won", "Lost", "Engaging", "Prospecting"], opportunities, p=[0.45, 0.3, 0.15, 0.1]
    )
    rows = []
    for i in range(opportunities):
        close = engage[i] + timedelta(days=int(duration[i]))
        s = stage[i]
        if s in ("Won", "Lost") and close > last:
            s = "Engaging"
        account = accounts[int(rng.integers(0, len(accounts) - 2))]
        if s in ("Engaging", "Prospecting") and rng.random() < 0.3:
            account = None
        rows.append(
            {
                "opportunity_id": f"OPP{i:07d}",
                "sales_agent": agents[int(rng.integers(0, len(agents) - 1))],
                "product": list(products)[int(rng.integers(0, len(products)))],
                "account": account,
                "deal_stage": s,
                "engage_date": None if s == "Prospecting" else engage[i],
                "close_date": close if s in ("Won", "Lost") else None,
                "close_value": int(rng.integers(0, 5000)) if s in ("Won", "Lost") else None,
            }
        )
    pipeline = pd.DataFrame(rows)
    pipeline["close_value"] = pipeline["close_value"].astype("Int64")
    return {
        "sales_pipeline": pipeline,
        "accounts": pd.DataFrame(
            {
                "account": accounts,
                "sector": [["retail", "tech", "medical"][i % 3] for i in range(len(accounts))],
                "year_established": [1980 + i for i in range(len(accounts))],
                "revenue": [100.5 * (i + 1) for i in range(len(accounts))],
                "employees": [10 * (i + 1) for i in range(len(accounts))],
                "office_location": ["United States"] * len(accounts),
                "subsidiary_of": [
                    accounts[0] if i % 4 == 1 else None for i in range(len(accounts))
                ],
            }
        ),
        "products": pd.DataFrame(
            {
                "product": list(products),
                "series": ["GTX", "GTX", "MG", "GTK"],
                "sales_price": list(products.values()),
            }
        ),
        "sales_teams": pd.DataFrame(
            {
                "sales_agent": agents,
                "manager": [f"manager_{i % 3}" for i in range(len(agents))],
                "regional_office": [["Central", "East", "West"][i % 3] for i in range(len(agents))],
            }
        ),
    }
