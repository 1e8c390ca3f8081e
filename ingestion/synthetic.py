"""A seeded stand-in for the Kaggle CRM data, with a planted, documented win signal.

Why: the platform must run end to end with no Kaggle account and no network, at any scale, and
its model must have something real to find. The generator reproduces the shape and every quirk of
`innocentmfa/crm-sales-opportunities` (see docs/synthetic.md) and plants this signal:

    logit P(win) = intercept
                   + agent_skill[agent]                     latent, N(0, 0.60) per agent
                   + account_effect[account]                latent, N(0, 0.30) per account
                   + product_effect[product]                fixed, -0.25 .. +0.25
                   + fit[product, sector]                   latent, N(0, 0.55) per pair
                   + 0.35 * z(log revenue of the account)   bigger accounts win more
                   + 0.50 * [engage month ends a quarter]   quarter-end push (Mar/Jun/Sep/Dec)

Every term is computable at engagement time from history or reference data: agent / account /
product identity and their historical win rates, product series and price, account sector and
size, engage month. The intercept is solved so that about 63% of closed deals are won (as in the
real data); the oracle AUC of the true probability against the outcome of closed deals is about
0.75. The true probability of every opportunity goes to `SourceData.ground_truth`, never into the
four landed tables. `signal` (0 to 1, default 1) multiplies the whole sum of terms: 0 leaves
outcomes independent of every feature (for testing that nothing is learnt, or promoted, from
noise), with the same deals and quirks. `drift` (ingestion.drift) changes the deals engaged from a
given day on — product mix, a sector's win rate, a team leaving — and leaves every earlier deal
exactly as in the undrifted history.

Closing: a deal engaged on `engage_date` closes `duration` days later (gamma, median ~45 days);
nothing closes before 2017-03-01 (earlier closes move into March 2017) and a deal whose close
would fall after 2017-12-31 stays open (`Engaging`). That is how open deals arise; `Prospecting`
deals have no engage date at all. Vectorised throughout: 1,000,000 opportunities take seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.drift import (
    DRIFTED_SECTOR,
    LEAVING_MANAGER,
    PRODUCT_MIX,
    PRODUCT_SHARE_FACTOR,
    SECTOR_LOGIT_SHIFT,
    SECTOR_WIN,
    TEAM_LEAVES,
    Drift,
)
from ingestion.source_data import SourceData, table_checksums
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SALES_TEAMS, SCHEMAS

GENERATOR_VERSION = 1
DEFAULT_OPPORTUNITIES = 8800
SOURCE = "synthetic"
# Strength of the planted signal: the factor on every term of the true logit (1 = as documented).
DEFAULT_SIGNAL = 1.0

FIRST_ENGAGE = np.datetime64("2016-10-20", "D")
LAST_DAY = np.datetime64("2017-12-31", "D")
FIRST_CLOSE = np.datetime64("2017-03-01", "D")

# Row counts of the real data per 8,800 opportunities; scaled by N.
REAL_N = 8800
REAL_PROSPECTING = 500
REAL_NULL_ACCOUNT = 1425
REAL_OPEN_DUPLICATES = 350
TARGET_WIN_RATE = 4238 / (4238 + 2473)

# The real data writes this product without its space in sales_pipeline.csv only.
PIPELINE_PRODUCT_SPELLING = {"GTX Pro": "GTXPro"}

PRODUCTS_REF: tuple[tuple[str, str, int, float, float], ...] = (
    # product, series, sales_price, share of deals, base effect on the logit
    ("GTX Basic", "GTX", 550, 1866, 0.15),
    ("GTX Pro", "GTX", 4821, 1480, -0.05),
    ("MG Special", "MG", 55, 1651, 0.25),
    ("MG Advanced", "MG", 3393, 1412, -0.10),
    ("GTX Plus Pro", "GTX", 5482, 968, -0.15),
    ("GTX Plus Basic", "GTX", 1096, 1383, 0.05),
    ("GTK 500", "GTK", 26768, 40, -0.25),
)

SECTORS: tuple[tuple[str, int], ...] = (
    ("retail", 17),
    ("technolgy", 12),  # sic: the real data's spelling, kept on purpose
    ("medical", 12),
    ("marketing", 8),
    ("finance", 8),
    ("software", 7),
    ("entertainment", 6),
    ("telecommunications", 6),
    ("services", 5),
    ("employment", 4),
)

ACCOUNT_NAMES: tuple[str, ...] = (
    "Acme Corporation", "Betasoloin", "Betatech", "Bioholding", "Bioplex", "Blackzim",
    "Bluth Company", "Bubba Gump", "Cancity", "Cheers", "Codehow", "Condax", "Conecom",
    "Dalttechnology", "Dambase", "Domzoom", "Doncon", "Donquadtech", "Dontechi", "Donware",
    "Fasttech", "Faxquote", "Finhigh", "Finjob", "Funholding", "Ganjaflex", "Gekko & Co",
    "Genco Pura Olive Oil Company", "Globex Corporation", "Gogozoom", "Golddex", "Goodsilron",
    "Green-Plus", "Groovestreet", "Hatfan", "Hottechi", "Initech", "Inity", "Isdom",
    "Iselectrics", "J-Texon", "Kan-code", "Kinnamplus", "Konex", "Konmatfix", "Labdrill",
    "Lexiqvolax", "Massive Dynamic", "Matdax", "Mathtouch", "Nam-zim", "Newex", "Ontomedia",
    "Opentech", "Plexzap", "Plusstrong", "Plussunin", "Rangreen", "Rantouch", "Ron-tech",
    "Rundofase", "Scotfind", "Silis", "Singletechno", "Sonron", "Stanredtax", "Statholdings",
    "Streethex", "Sumace", "Sunnamplex", "The New York Inquirer", "Toughzap", "Treequote",
    "Trioplex", "Umbrella Corporation", "Vehement Capital Partners", "Warephase",
    "Wonka Industries", "Xx-holding", "Xx-zobam", "Y-corporation", "Zathunicon", "Zencorporation",
    "Zoomit", "Zotware",
)  # fmt: skip

PARENT_COMPANIES: tuple[str, ...] = (
    "Acme Corporation", "Bubba Gump", "Golddex", "Inity", "Massive Dynamic", "Sonron",
    "Warephase",
)  # fmt: skip
N_SUBSIDIARIES = 15

FOREIGN_OFFICES: tuple[str, ...] = (
    "Philipines",  # sic: the real data's spelling, kept on purpose
    "Japan", "Korea", "Jordan", "Norway", "Panama", "Belgium", "Italy", "Kenya", "Poland",
    "Brazil", "China", "Germany", "Romania",
)  # fmt: skip

MANAGERS: tuple[tuple[str, str], ...] = (
    ("Dustin Brinkmann", "Central"),
    ("Melvin Marxen", "Central"),
    ("Cara Losch", "East"),
    ("Rocco Neubert", "East"),
    ("Celia Rouche", "West"),
    ("Summer Sewald", "West"),
)

AGENT_NAMES: tuple[str, ...] = (
    "Anna Snelling", "Cecily Lampkin", "Versie Hillebrand", "Lajuana Vencill", "Moses Frase",
    "Jonathan Berthelot", "Marty Freudenburg", "Gladys Colclough", "Niesha Huffines",
    "Darcel Schlecht", "Daniell Hammack", "Cassey Cress", "Donn Cantrell", "Reed Clapper",
    "Corliss Cosme", "Violet Mclelland", "Rosie Papadopoulos", "Garret Kinder", "Wilburn Farren",
    "Vicki Laflamme", "Rosalina Dieter", "Hayden Neloms", "Markita Hansen", "Elease Gluck",
    "James Ascencio", "Kary Hendrixson", "Kami Bicknell", "Zane Levy", "Maureen Marcano",
    "Boris Faz", "Carl Lin", "Mei-Mei Johns", "Elizabeth Anderson", "Natalya Ivanova",
    "Carol Thompson",
)  # fmt: skip
N_AGENTS_WITHOUT_DEALS = 5  # the last five names: in sales_teams.csv, never on a deal

# The planted signal (see the module docstring and docs/synthetic.md).
AGENT_SKILL_SD = 0.70
ACCOUNT_EFFECT_SD = 0.35
FIT_SD = 0.70
SIZE_COEF = 0.35
QUARTER_END_COEF = 0.50
QUARTER_END_MONTHS = (3, 6, 9, 12)

# Deal duration in days: gamma(shape, scale) + 1, capped like the real data (1..138 days).
DURATION_SHAPE = 2.0
DURATION_SCALE = 30.0
MAX_DURATION = 138
# Engagements grow over the period: density rises linearly by this factor from first to last day.
ENGAGE_RAMP = 3.2
# A drift draws from its own stream (seeded by [seed, DRIFT_STREAM]), so the main stream — and with
# it every undrifted deal — is the same with or without a drift.
DRIFT_STREAM = 7

ID_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def generate(
    opportunities: int = DEFAULT_OPPORTUNITIES,
    seed: int = 42,
    *,
    signal: float = DEFAULT_SIGNAL,
    drift: Drift | None = None,
) -> SourceData:
    """The four CRM tables plus the ground truth, identical for the same parameters.

    `signal` in [0, 1] scales every planted term of the logit: 1 (the default) is the documented
    signal, 0 makes every outcome independent of every feature (all quirks kept, same win rate).
    The random draws do not depend on it, so the same seed gives the same deals, dates and
    quirks at any signal; only the outcomes and the true probabilities change.

    `drift`: what changes for the deals engaged on or after `drift.start` (ingestion.drift); the
    deals engaged earlier, and every draw of the generator, are those of the undrifted history.
    """
    if opportunities < 1:
        raise ValueError(f"opportunities must be at least 1, got {opportunities}.")
    check_signal(signal)
    rng = np.random.default_rng(seed)
    accounts = _accounts(rng)
    agents = _sales_teams()
    products = _products()
    drift_rng = np.random.default_rng([seed, DRIFT_STREAM])
    pipeline, truth = _pipeline(rng, opportunities, accounts, float(signal), drift, drift_rng)
    accounts = _plant_late_establishment(accounts, pipeline)
    tables = {
        ACCOUNTS: _to_table(ACCOUNTS, accounts),
        PRODUCTS: _to_table(PRODUCTS, products),
        SALES_TEAMS: _to_table(SALES_TEAMS, agents),
        SALES_PIPELINE: pipeline,
    }
    checksums = table_checksums(tables)
    params: dict[str, object] = {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "n": opportunities,
        "seed": seed,
    }
    if signal != DEFAULT_SIGNAL:  # the default's parameters (and checksums) stay as they were
        params["signal"] = float(signal)
    if drift is not None:
        params["drift"] = str(drift)
    checksums["parameters.json"] = hashlib.sha256(
        json.dumps(params, sort_keys=True).encode()
    ).hexdigest()
    return SourceData(
        tables=tables, source=source_label(signal, drift), checksums=checksums, ground_truth=truth
    )


def as_of(data: SourceData, day: date) -> SourceData:
    """The generated world as the CRM showed it at the end of `day`, for landing daily snapshots
    of one history: deals engaged later do not exist yet, deals that close later are still open
    (`Engaging`, no close date or value, no outcome in the ground truth). Prospecting deals, which
    have no engage date, are there from the start. On or after the last day: `data` unchanged.

    Two snapshots a month apart thus differ as real ones do: some deals closed, some new ones.
    """
    if day >= LAST_DAY.astype(date):
        return data
    pipeline = data.tables[SALES_PIPELINE]
    cutoff = pa.scalar(day, pa.date32())
    engaged_later = pc.fill_null(pc.greater(pipeline["engage_date"], cutoff), False)
    pipeline = pipeline.filter(pc.invert(engaged_later))
    closes_later = pc.fill_null(pc.greater(pipeline["close_date"], cutoff), False)
    stage = pc.if_else(closes_later, "Engaging", pipeline["deal_stage"])
    pipeline = (
        pipeline.set_column(_index(pipeline, "deal_stage"), "deal_stage", stage)
        .set_column(
            _index(pipeline, "close_date"),
            "close_date",
            pc.if_else(closes_later, pa.scalar(None, pa.date32()), pipeline["close_date"]),
        )
        .set_column(
            _index(pipeline, "close_value"),
            "close_value",
            pc.if_else(closes_later, pa.scalar(None, pa.int64()), pipeline["close_value"]),
        )
    )
    tables = {**data.tables, SALES_PIPELINE: pipeline}
    checksums = {**data.checksums, **table_checksums(tables), "as_of": day.isoformat()}
    truth = data.ground_truth
    if truth is not None:
        open_now = pipeline.filter(pc.is_null(pipeline["close_date"]))["opportunity_id"]
        truth = truth.filter(pc.is_in(truth["opportunity_id"], pipeline["opportunity_id"]))
        still_open = pc.is_in(truth["opportunity_id"], open_now)
        won = pc.if_else(still_open, pa.scalar(None, pa.bool_()), truth["won"])
        truth = truth.set_column(_index(truth, "won"), "won", won)
    return SourceData(tables=tables, source=data.source, checksums=checksums, ground_truth=truth)


def _index(table: pa.Table, column: str) -> int:
    return table.schema.get_field_index(column)


def check_signal(signal: float) -> None:
    """`signal` must be a number in [0, 1]: a `ValueError` saying so otherwise."""
    if not (isinstance(signal, int | float) and 0.0 <= signal <= 1.0):
        raise ValueError(f"signal must be a number between 0 and 1, got {signal!r}.")


def source_label(signal: float = DEFAULT_SIGNAL, drift: Drift | None = None) -> str:
    """What the landing manifest records as the source: the signal when it is not the default,
    the drift when there is one (`synthetic:signal=0.3:drift=2017-08-01`)."""
    label = SOURCE if signal == DEFAULT_SIGNAL else f"{SOURCE}:signal={float(signal):g}"
    return label if drift is None else f"{label}:drift={drift}"


# --- reference tables ---------------------------------------------------------------------------
def _accounts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(ACCOUNT_NAMES)
    sectors = np.repeat([s for s, _ in SECTORS], [c for _, c in SECTORS])
    sectors = sectors[rng.permutation(n)]
    revenue = np.round(np.exp(rng.normal(np.log(1200.0), 1.1, n)).clip(4.5, 11_700.0), 2)
    employees = np.round(revenue * np.exp(rng.normal(np.log(2.6), 0.45, n))).astype(np.int64)
    employees = employees.clip(9, 35_000)
    year = rng.integers(1979, 2018, n)
    office = np.full(n, "United States", dtype=object)
    foreign = rng.choice(n, len(FOREIGN_OFFICES), replace=False)
    office[foreign] = FOREIGN_OFFICES
    subsidiary = np.full(n, None, dtype=object)
    names = np.array(ACCOUNT_NAMES, dtype=object)
    candidates = np.flatnonzero(~np.isin(names, PARENT_COMPANIES))
    children = rng.choice(candidates, N_SUBSIDIARIES, replace=False)
    subsidiary[children] = rng.choice(np.array(PARENT_COMPANIES, dtype=object), N_SUBSIDIARIES)
    return {
        "account": names,
        "sector": sectors.astype(object),
        "year_established": year.astype(np.int64),
        "revenue": revenue,
        "employees": employees,
        "office_location": office,
        "subsidiary_of": subsidiary,
    }


def _products() -> dict[str, np.ndarray]:
    return {
        "product": np.array([p[0] for p in PRODUCTS_REF], dtype=object),
        "series": np.array([p[1] for p in PRODUCTS_REF], dtype=object),
        "sales_price": np.array([p[2] for p in PRODUCTS_REF], dtype=np.int64),
    }


def _sales_teams() -> dict[str, np.ndarray]:
    manager_of = np.arange(len(AGENT_NAMES)) % len(MANAGERS)
    return {
        "sales_agent": np.array(AGENT_NAMES, dtype=object),
        "manager": np.array([MANAGERS[i][0] for i in manager_of], dtype=object),
        "regional_office": np.array([MANAGERS[i][1] for i in manager_of], dtype=object),
    }


# --- the pipeline -------------------------------------------------------------------------------
def _pipeline(
    rng: np.random.Generator,
    n: int,
    accounts: dict[str, np.ndarray],
    signal: float,
    drift: Drift | None = None,
    drift_rng: np.random.Generator | None = None,
) -> tuple[pa.Table, pa.Table]:
    n_agents = len(AGENT_NAMES) - N_AGENTS_WITHOUT_DEALS
    n_accounts = len(ACCOUNT_NAMES)
    n_products = len(PRODUCTS_REF)
    sector_names = [s for s, _ in SECTORS]
    sector_idx = np.array([sector_names.index(s) for s in accounts["sector"]])

    # Latent truth, drawn first so that it does not depend on N.
    skill = rng.normal(0.0, AGENT_SKILL_SD, n_agents)
    account_effect = rng.normal(0.0, ACCOUNT_EFFECT_SD, n_accounts)
    fit = rng.normal(0.0, FIT_SD, (n_products, len(SECTORS)))
    log_rev = np.log(accounts["revenue"])
    size = (log_rev - log_rev.mean()) / log_rev.std()
    product_effect = np.array([p[4] for p in PRODUCTS_REF])
    agent_weights = rng.gamma(4.0, 1.0, n_agents)
    account_weights = rng.gamma(2.0, 1.0, n_accounts)
    product_share = np.array([p[3] for p in PRODUCTS_REF], dtype=float)

    agent = rng.choice(n_agents, n, p=agent_weights / agent_weights.sum())
    account = rng.choice(n_accounts, n, p=account_weights / account_weights.sum())
    product = rng.choice(n_products, n, p=product_share / product_share.sum())

    n_prospecting = min(n, round(n * REAL_PROSPECTING / REAL_N))
    prospecting = np.zeros(n, dtype=bool)
    prospecting[rng.choice(n, n_prospecting, replace=False)] = True

    engage = _engage_dates(rng, n)
    engage_days = engage.astype(np.int64)
    duration = np.minimum(1 + rng.gamma(DURATION_SHAPE, DURATION_SCALE, n), MAX_DURATION)
    close = engage + duration.astype(np.int64).astype("timedelta64[D]")
    early = close < FIRST_CLOSE
    close[early] = FIRST_CLOSE + rng.integers(0, 31, early.sum()).astype("timedelta64[D]")
    engaged_open = ~prospecting & (close > LAST_DAY)
    closed = ~prospecting & ~engaged_open

    month = engage.astype("datetime64[M]").astype(np.int64) % 12 + 1
    quarter_end = np.isin(month, QUARTER_END_MONTHS) & ~prospecting

    def logit(agent: np.ndarray, product: np.ndarray) -> np.ndarray:
        return (
            skill[agent]
            + account_effect[account]
            + product_effect[product]
            + fit[product, sector_idx[account]]
            + SIZE_COEF * size[account]
            + QUARTER_END_COEF * quarter_end
        ) * signal  # exact for the default 1.0; 0 leaves only the intercept (the win rate)

    base = logit(agent, product)
    intercept = _solve_intercept(base[closed], TARGET_WIN_RATE)
    # Duplicates are picked from the undrifted deals: the main stream's draws stay the same.
    undrifted = (agent.copy(), product.copy())
    if drift is not None and drift_rng is not None:
        # Prospecting deals are there from the start (see `as_of`): they keep their history.
        drifted = (engage >= np.datetime64(drift.start, "D")) & ~prospecting
        agent, product = _drifted_mix(drift, drift_rng, drifted, agent, product, agent_weights)
        base = logit(agent, product)
        if SECTOR_WIN in drift.kinds:
            in_sector = accounts["sector"][account] == DRIFTED_SECTOR
            base = base + SECTOR_LOGIT_SHIFT * (drifted & in_sector)
    win_probability = 1.0 / (1.0 + np.exp(-(intercept + base)))
    won = closed & (rng.random(n) < win_probability)

    stage = np.where(prospecting, 3, np.where(engaged_open, 2, np.where(won, 0, 1)))
    account_null = _null_accounts(rng, stage >= 2, round(n * REAL_NULL_ACCOUNT / REAL_N))

    # Duplicates: open rows copied from another open row, all fields but the id.
    copy_from, copy_to = _duplicate_pairs(
        rng, stage, *undrifted, account, account_null, engage_days,
        round(n * REAL_OPEN_DUPLICATES / REAL_N),
    )  # fmt: skip
    for values in (agent, product, account, stage, account_null, engage_days, win_probability):
        values[copy_to] = values[copy_from]
    close_days = close.astype(np.int64)

    price = np.array([p[2] for p in PRODUCTS_REF], dtype=float)[product]
    won_value = np.maximum(1, np.round(price * np.exp(rng.normal(0.0, 0.08, n)))).astype(np.int64)
    is_open = stage >= 2
    close_value = np.where(stage == 0, won_value, 0)

    stage_names = ["Won", "Lost", "Engaging", "Prospecting"]
    pipeline_products = [PIPELINE_PRODUCT_SPELLING.get(p[0], p[0]) for p in PRODUCTS_REF]
    ids = _opportunity_ids(rng, n)
    pipeline = pa.table(
        {
            "opportunity_id": pa.array(ids, pa.string()),
            "sales_agent": _decode(agent, AGENT_NAMES),
            "product": _decode(product, pipeline_products),
            "account": _decode(account, ACCOUNT_NAMES, mask=account_null),
            "deal_stage": _decode(stage, stage_names),
            "engage_date": _dates(engage_days, mask=stage == 3),
            "close_date": _dates(close_days, mask=is_open),
            "close_value": pa.array(close_value, pa.int64(), mask=is_open),
        },
        schema=SCHEMAS[SALES_PIPELINE],
    )
    truth = pa.table(
        {
            "opportunity_id": pa.array(ids, pa.string()),
            "win_probability": pa.array(win_probability, pa.float64()),
            "won": pa.array(stage == 0, pa.bool_(), mask=is_open),
        }
    )
    return pipeline, truth


def _drifted_mix(
    drift: Drift,
    rng: np.random.Generator,
    drifted: np.ndarray,
    agent: np.ndarray,
    product: np.ndarray,
    agent_weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Agent and product of every deal after `drift`: the drifted deals' redrawn, the rest kept."""
    agent, product = agent.copy(), product.copy()
    count = int(drifted.sum())
    if PRODUCT_MIX in drift.kinds and count:
        share = np.array([p[3] * PRODUCT_SHARE_FACTOR.get(p[0], 1.0) for p in PRODUCTS_REF])
        product[drifted] = rng.choice(len(PRODUCTS_REF), count, p=share / share.sum())
    if TEAM_LEAVES in drift.kinds and count:
        manager_of = np.arange(agent_weights.size) % len(MANAGERS)
        leaving = np.array([MANAGERS[m][0] == LEAVING_MANAGER for m in manager_of])
        weights = np.where(leaving, 0.0, agent_weights)
        moved = drifted & leaving[agent]
        agent[moved] = rng.choice(agent_weights.size, int(moved.sum()), p=weights / weights.sum())
    return agent, product


def _engage_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dates in [FIRST_ENGAGE, LAST_DAY] whose density rises linearly (more deals over time)."""
    span = int((LAST_DAY - FIRST_ENGAGE).astype(int)) + 1
    # Inverse CDF of density f(x) ∝ 1 + (r - 1) x on [0, 1].
    r = ENGAGE_RAMP
    u = rng.random(n)
    x = (-1 + np.sqrt(1 + (r * r - 1) * u)) / (r - 1)
    offset = np.minimum((x * span).astype(np.int64), span - 1)
    return FIRST_ENGAGE + offset.astype("timedelta64[D]")


def _solve_intercept(base: np.ndarray, target: float) -> float:
    """Intercept that makes the mean win probability of `base` equal `target` (bisection)."""
    if base.size == 0:
        return float(np.log(target / (1 - target)))
    lo, hi = -10.0, 10.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(mid + base)))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _null_accounts(rng: np.random.Generator, open_rows: np.ndarray, count: int) -> np.ndarray:
    """Blank the account of `count` open deals (never of a closed one), as in the real data."""
    mask = np.zeros(open_rows.size, dtype=bool)
    candidates = np.flatnonzero(open_rows)
    mask[rng.choice(candidates, min(count, candidates.size), replace=False)] = True
    return mask


def _duplicate_pairs(
    rng: np.random.Generator,
    stage: np.ndarray,
    agent: np.ndarray,
    product: np.ndarray,
    account: np.ndarray,
    account_null: np.ndarray,
    engage_days: np.ndarray,
    target: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(source, copy) row pairs so that about `target` open rows repeat another open row.

    Open rows with a blank account already coincide by chance (same agent, product and stage);
    only the shortfall is planted, on rows that have no twin yet.
    """
    is_open = stage >= 2
    visible_account = np.where(account_null, -1, account)
    engaged = np.where(stage == 3, -1, engage_days)
    open_idx = np.flatnonzero(is_open)
    rows = np.stack([agent, product, visible_account, stage, engaged], axis=1)[open_idx]
    _, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    natural = int(open_idx.size - first.size)
    singles = open_idx[first[counts == 1]]
    need = min(max(0, target - natural), singles.size // 2)
    picked = rng.choice(singles, 2 * need, replace=False)
    return picked[:need], picked[need:]


def _opportunity_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique 8-character uppercase alphanumeric ids, like the real `1C1I7A6R`."""
    space = len(ID_ALPHABET) ** 8
    numbers = rng.choice(space, n, replace=False)
    powers = len(ID_ALPHABET) ** np.arange(7, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers) % len(ID_ALPHABET)
    chars = np.ascontiguousarray(ID_ALPHABET[digits])
    return chars.view("S8").ravel().astype("U8")


# --- finishing touches ------------------------------------------------------------------------
def _plant_late_establishment(
    accounts: dict[str, np.ndarray], pipeline: pa.Table
) -> dict[str, np.ndarray]:
    """Give the busiest account a founding year after its first engagement (a real-data quirk)."""
    frame = pipeline.select(["account", "engage_date"]).drop_null().to_pandas()
    if frame.empty:
        return accounts
    name = frame["account"].value_counts().index[0]
    first_year = min(d.year for d in frame.loc[frame["account"] == name, "engage_date"])
    years = accounts["year_established"].copy()
    years[list(accounts["account"]).index(name)] = first_year + 1
    return {**accounts, "year_established": years}


def _to_table(name: str, columns: dict[str, np.ndarray]) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = [pa.array(columns[f.name], f.type, from_pandas=True) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _decode(codes: np.ndarray, labels: Sequence[str], mask: np.ndarray | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), pa.int32(), mask=mask)
    dictionary = pa.array(list(labels), pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()


def _dates(days: np.ndarray, mask: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.int32(), mask=mask).cast(pa.date32())
