"""A simulated examples frame with a known true win probability.

Used by tests and benchmarks of the training step without the feature store. It has the shape
`examples.build_examples` returns (entity keys, as-of `event_timestamp`, `label`,
`label_timestamp`, Feast full feature names) plus `win_probability`, the truth the outcome was
drawn from, so a model can be compared with the oracle.

Planted signal (logit of the win probability): a latent skill per sales agent (seen by a model
only through the agent's point-in-time historical win rates), a product-series x sector fit, the
account's size (log employees) and a small list-price effect. Every feature is computed as of the
example's time from deals closed before it, as the feature store does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.features import LABEL, LABEL_TIMESTAMP, TIMESTAMP, TRUE_PROBABILITY

SECTORS = (
    "technology",
    "medical",
    "retail",
    "software",
    "entertainment",
    "marketing",
    "finance",
    "telecommunications",
    "services",
    "employment",
)
PRODUCTS = (
    ("GTX Basic", "GTX", 550),
    ("GTX Pro", "GTX", 4821),
    ("MG Special", "MG", 55),
    ("MG Advanced", "MG", 3393),
    ("GTX Plus Pro", "GTX", 5482),
    ("GTX Plus Basic", "GTX", 1096),
    ("GTK 500", "GTK", 26768),
)
SERIES = ("GTX", "MG", "GTK")
OFFICES = ("Central", "East", "West")
START = np.datetime64("2016-10-20")
END = np.datetime64("2017-12-31")
SMOOTHING_K = 10.0
STEP_DAYS = 30


def _windowed_counts(
    close_day: np.ndarray, won: np.ndarray, query_day: np.ndarray, window: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Closed and won counts among deals closed in (t - window, t] (all time if window None)."""
    order = np.argsort(close_day, kind="stable")
    days, cum_won = close_day[order], np.concatenate([[0], np.cumsum(won[order])])
    hi = np.searchsorted(days, query_day, side="right")
    lo = np.zeros_like(hi) if window is None else np.searchsorted(days, query_day - window, "right")
    return hi - lo, cum_won[hi] - cum_won[lo]


def _entity_stats(
    deals: pd.DataFrame, rows: pd.DataFrame, key: str, prefix: str, global_rate: np.ndarray
) -> pd.DataFrame:
    """Point-in-time closed/won counts and smoothed win rates of `key` at each row's as-of day."""
    out = pd.DataFrame(index=rows.index)
    for window, suffix in ((90, "90d"), (None, "all")):
        closed = np.zeros(len(rows))
        won = np.zeros(len(rows))
        for entity, positions in rows.groupby(key).indices.items():
            mine = deals[deals[key] == entity]
            c, w = _windowed_counts(
                mine["close_day"].to_numpy(),
                mine[LABEL].to_numpy(),
                rows["as_of_day"].to_numpy()[positions],
                window,
            )
            closed[positions], won[positions] = c, w
        out[f"{prefix}__closed_{suffix}"] = closed.astype("int64")
        out[f"{prefix}__won_{suffix}"] = won.astype("int64")
        out[f"{prefix}__win_rate_{suffix}"] = (won + SMOOTHING_K * global_rate) / (
            closed + SMOOTHING_K
        )
    return out


def simulate_examples(
    opportunities: int = 8800, seed: int = 42, *, step_days: int | None = STEP_DAYS
) -> pd.DataFrame:
    """Closed deals scored at engagement and every `step_days` while open, with the truth."""
    rng = np.random.default_rng(seed)
    agents = pd.DataFrame(
        {
            "sales_agent": [f"Agent {i:02d}" for i in range(35)],
            "skill": rng.normal(0.0, 0.8, 35),
            "regional_office": rng.choice(OFFICES, 35),
        }
    )
    accounts = pd.DataFrame(
        {
            "account": [f"Account {i:02d}" for i in range(85)],
            "sector": rng.choice(SECTORS, 85),
            "employees": np.round(np.exp(rng.normal(7.0, 1.4, 85))).astype("int64") + 10,
            "year_established": rng.integers(1979, 2017, 85),
        }
    )
    accounts["revenue"] = np.round(accounts["employees"] * rng.lognormal(-1.5, 0.4, 85), 2)
    products = pd.DataFrame(PRODUCTS, columns=["product", "series", "sales_price"])
    fit = rng.normal(0.0, 0.6, (len(SERIES), len(SECTORS)))

    n = opportunities
    deals = pd.DataFrame(
        {
            "opportunity_id": [f"S{seed % 100:02d}{i:07d}" for i in range(n)],
            "sales_agent": agents["sales_agent"].to_numpy()[rng.integers(0, 35, n)],
            "account": accounts["account"].to_numpy()[rng.integers(0, 85, n)],
            "product": products["product"].to_numpy()[rng.integers(0, 7, n)],
        }
    )
    deals = deals.merge(agents, on="sales_agent").merge(accounts, on="account")
    deals = deals.merge(products, on="product").sort_values("opportunity_id", ignore_index=True)
    span = int((END - START).astype(int)) - 20
    engage = START + rng.integers(0, span, n).astype("timedelta64[D]")
    duration = np.maximum(1, np.round(rng.gamma(2.0, 25.0, n))).astype("timedelta64[D]")
    close = np.maximum(engage + duration, np.datetime64("2017-03-01"))
    keep = close <= END
    deals, engage, close = deals[keep].reset_index(drop=True), engage[keep], close[keep]

    series_i = deals["series"].map({s: i for i, s in enumerate(SERIES)}).to_numpy()
    sector_i = deals["sector"].map({s: i for i, s in enumerate(SECTORS)}).to_numpy()
    size = (np.log(deals["employees"]) - 7.0) / 1.4
    logit = (
        0.35
        + deals["skill"].to_numpy()
        + fit[series_i, sector_i]
        + 0.45 * size.to_numpy()
        - 0.25 * np.log(deals["sales_price"].to_numpy() / 1000.0) / 2.0
    )
    deals[TRUE_PROBABILITY] = 1.0 / (1.0 + np.exp(-logit))
    deals[LABEL] = (rng.random(len(deals)) < deals[TRUE_PROBABILITY]).astype("int64")
    deals["engage_day"] = (engage - START).astype("int64")
    deals["close_day"] = (close - START).astype("int64")

    rows = _as_of_rows(deals, step_days)
    g_closed, g_won = _windowed_counts(
        deals["close_day"].to_numpy(), deals[LABEL].to_numpy(), rows["as_of_day"].to_numpy(), None
    )
    global_rate = np.where(g_closed > 0, (g_won + 1.0) / (g_closed + 2.0), 0.5)
    stats = [
        _entity_stats(deals, rows, "sales_agent", "sales_agent_daily_stats", global_rate),
        _entity_stats(deals, rows, "account", "account_daily_stats", global_rate),
        _entity_stats(deals, rows, "product", "product_daily_stats", global_rate),
    ]
    out = pd.DataFrame(
        {
            "opportunity_id": rows["opportunity_id"],
            "sales_agent": rows["sales_agent"],
            "account": rows["account"],
            "product": rows["product"],
            TIMESTAMP: pd.to_datetime(
                START + rows["as_of_day"].to_numpy().astype("timedelta64[D]")
            ).tz_localize("UTC"),
            LABEL: rows[LABEL],
            LABEL_TIMESTAMP: pd.to_datetime(
                START + rows["close_day"].to_numpy().astype("timedelta64[D]")
            ).tz_localize("UTC"),
            TRUE_PROBABILITY: rows[TRUE_PROBABILITY],
        }
    )
    out = pd.concat([out, *stats], axis=1)
    out["account_profile__sector"] = rows["sector"]
    out["account_profile__employees"] = rows["employees"]
    out["account_profile__revenue"] = rows["revenue"]
    out["account_profile__year_established"] = rows["year_established"]
    out["product_profile__series"] = rows["series"]
    out["product_profile__sales_price"] = rows["sales_price"]
    out["sales_agent_profile__regional_office"] = rows["regional_office"]
    out["opportunity_request_features__days_open"] = rows["as_of_day"] - rows["engage_day"]
    return out.reset_index(drop=True)


def _as_of_rows(deals: pd.DataFrame, step_days: int | None) -> pd.DataFrame:
    """One row per (deal, as-of day): engage day + k*step while strictly before the close day."""
    open_days = (deals["close_day"] - deals["engage_day"]).to_numpy()
    steps = np.ones(len(deals), dtype="int64")
    if step_days:
        steps = np.maximum(1, -(-open_days // step_days))
    rows = deals.loc[deals.index.repeat(steps)].copy()
    k = rows.groupby(level=0).cumcount().to_numpy()
    rows["as_of_day"] = rows["engage_day"].to_numpy() + k * (step_days or 0)
    rows = rows[rows["as_of_day"] < rows["close_day"]]
    return rows.reset_index(drop=True)
