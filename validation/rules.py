"""Rules across columns and tables: deal-stage invariants, references, duplicates, and the
properties of the data downstream code must respect (label leak, date ranges).

Every function takes pandas frames with a RangeIndex (positions == labels) and returns findings,
each with the category its rule gives it; error findings carry the positions of their rows so
those rows can be quarantined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.tables import ACCOUNTS, SALES_PIPELINE, SALES_TEAMS, STAGES_CLOSED, STAGES_OPEN
from validation.findings import Category, Finding, Severity, jsonable, row_examples

PIPELINE_KEY = ["opportunity_id", "deal_stage"]
# A first close this many days after the first engagement is worth telling the feature builders.
LATE_FIRST_CLOSE_DAYS = 60
# Above this share of empty `subsidiary_of` the column is reported as mostly empty.
MOSTLY_EMPTY = 0.5


def blank(values: pd.Series) -> np.ndarray:
    """Missing or whitespace-only strings (sources differ in how they spell 'empty')."""
    missing = values.isna().to_numpy()
    # Strip the distinct values only: id columns have few, and 1M-row strips are slow.
    empties = [v for v in pd.unique(values[~missing]) if isinstance(v, str) and not v.strip()]
    return missing | values.isin(empties).to_numpy()


def mask_finding(
    rule_id: str,
    table: str,
    category: Category,
    severity: Severity,
    mask: np.ndarray,
    frame: pd.DataFrame,
    columns: list[str],
    message: str,
    *,
    column: str | None = None,
) -> Finding | None:
    """A finding for the rows in `mask`, or None when no row matches."""
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if not count:
        return None
    return Finding(
        rule_id=rule_id,
        table=table,
        severity=severity,
        count=count,
        message=message,
        examples=row_examples(frame, mask, columns),
        rows=np.flatnonzero(mask) if severity is Severity.ERROR else None,
        category=category,
        column=column,
    )


def _present(findings: Iterable[Finding | None]) -> list[Finding]:
    return [f for f in findings if f is not None]


@dataclass(frozen=True)
class Deals:
    """The pipeline as the boolean masks and arrays the stage rules are written in."""

    won: np.ndarray
    lost: np.ndarray
    closed: np.ndarray  # Won or Lost
    open: np.ndarray  # Engaging or Prospecting
    prospecting: np.ndarray
    engaged: np.ndarray  # Engaging, Won or Lost: the stages that need an engage_date
    no_account: np.ndarray
    engage_date: np.ndarray  # datetime64, NaT when empty
    close_date: np.ndarray
    has_value: np.ndarray
    value: np.ndarray  # close_value as int64, 0 when empty

    @classmethod
    def of(cls, pipeline: pd.DataFrame) -> Deals:
        stage = pipeline["deal_stage"]
        value = pipeline["close_value"]
        return cls(
            won=stage.eq("Won").to_numpy(),
            lost=stage.eq("Lost").to_numpy(),
            closed=stage.isin(STAGES_CLOSED).to_numpy(),
            open=stage.isin(STAGES_OPEN).to_numpy(),
            prospecting=stage.eq("Prospecting").to_numpy(),
            engaged=stage.isin(("Engaging", *STAGES_CLOSED)).to_numpy(),
            no_account=blank(pipeline["account"]),
            engage_date=pipeline["engage_date"].to_numpy(dtype="datetime64[s]"),
            close_date=pipeline["close_date"].to_numpy(dtype="datetime64[s]"),
            has_value=value.notna().to_numpy(),
            value=value.fillna(0).to_numpy(dtype=np.int64),
        )


@dataclass(frozen=True)
class StageRule:
    """One invariant of a deal's stage: the rows where `condition` holds break it."""

    rule_id: str
    category: Category
    severity: Severity
    condition: Callable[[Deals], np.ndarray]
    message: str


STAGE_RULES: tuple[StageRule, ...] = (
    StageRule(
        "sales_pipeline.closed_without_account",
        Category.MISSING,
        Severity.ERROR,
        lambda d: d.closed & d.no_account,
        "A Won/Lost deal has no account: closed deals must name their account.",
    ),
    StageRule(
        "sales_pipeline.closed_without_close_date",
        Category.MISSING,
        Severity.ERROR,
        lambda d: d.closed & np.isnat(d.close_date),
        "A Won/Lost deal has no close_date.",
    ),
    StageRule(
        "sales_pipeline.closed_without_close_value",
        Category.MISSING,
        Severity.ERROR,
        lambda d: d.closed & ~d.has_value,
        "A Won/Lost deal has no close_value.",
    ),
    StageRule(
        "sales_pipeline.open_with_close_date",
        Category.CONSISTENCY,
        Severity.ERROR,
        lambda d: d.open & ~np.isnat(d.close_date),
        "An open (Engaging/Prospecting) deal has a close_date.",
    ),
    StageRule(
        "sales_pipeline.open_with_close_value",
        Category.CONSISTENCY,
        Severity.ERROR,
        lambda d: d.open & d.has_value,
        "An open (Engaging/Prospecting) deal has a close_value.",
    ),
    StageRule(
        "sales_pipeline.missing_engage_date",
        Category.MISSING,
        Severity.ERROR,
        lambda d: d.engaged & np.isnat(d.engage_date),
        "An Engaging/Won/Lost deal has no engage_date (only Prospecting may lack it).",
    ),
    StageRule(
        "sales_pipeline.close_before_engage",
        Category.CONSISTENCY,
        Severity.ERROR,
        lambda d: d.close_date < d.engage_date,  # False where either date is empty
        "close_date is before engage_date.",
    ),
    StageRule(
        "sales_pipeline.won_without_value",
        Category.CONSISTENCY,
        Severity.ERROR,
        lambda d: d.won & d.has_value & (d.value <= 0),
        "A Won deal has close_value <= 0: every Won deal must have a value.",
    ),
    StageRule(
        "sales_pipeline.lost_with_value",
        Category.CONSISTENCY,
        Severity.ERROR,
        lambda d: d.lost & d.has_value & (d.value != 0),
        "A Lost deal has close_value != 0: Lost deals close at 0.",
    ),
    StageRule(
        "sales_pipeline.prospecting_with_engage_date",
        Category.CONSISTENCY,
        Severity.WARNING,
        lambda d: d.prospecting & ~np.isnat(d.engage_date),
        "A Prospecting deal already has an engage_date (expected only from Engaging on).",
    ),
    StageRule(
        "sales_pipeline.open_without_account",
        Category.QUIRK,  # an allowed empty (quirk 3): reported, not scored as missing
        Severity.WARNING,
        lambda d: d.open & d.no_account,
        "Open deals without an account: allowed (the account is often assigned later), "
        "but account features are unavailable for them.",
    ),
)
STAGE_COLUMNS = [*PIPELINE_KEY, "account", "engage_date", "close_date", "close_value"]


def stage_rules(pipeline: pd.DataFrame) -> list[Finding]:
    """What each deal stage implies about account, dates and close_value (`STAGE_RULES`)."""
    deals = Deals.of(pipeline)
    return _present(
        mask_finding(
            rule.rule_id,
            SALES_PIPELINE,
            rule.category,
            rule.severity,
            rule.condition(deals),
            pipeline,
            STAGE_COLUMNS,
            rule.message,
        )
        for rule in STAGE_RULES
    )


def reference_rules(
    pipeline: pd.DataFrame, accounts: pd.DataFrame, products: pd.DataFrame, teams: pd.DataFrame
) -> list[Finding]:
    """Every product, agent and (non-empty) account of a deal names a valid dimension row."""
    p = pipeline
    t = SALES_PIPELINE
    unknown_product = (
        p["product"].notna().to_numpy() & ~p["product"].isin(products["product"]).to_numpy()
    )
    unknown_agent = (
        p["sales_agent"].notna().to_numpy()
        & ~p["sales_agent"].isin(teams["sales_agent"]).to_numpy()
    )
    unknown_account = ~blank(p["account"]) & ~p["account"].isin(accounts["account"]).to_numpy()
    parent = accounts["subsidiary_of"]
    unknown_parent = ~blank(parent) & ~parent.isin(accounts["account"]).to_numpy()
    return _present(
        [
            mask_finding(
                "sales_pipeline.unknown_product",
                t,
                Category.REFERENCE,
                Severity.ERROR,
                unknown_product,
                p,
                [*PIPELINE_KEY, "product"],
                "product is not in products.csv (after the known aliases): add it there or "
                "to validation/aliases.py.",
                column="product",
            ),
            mask_finding(
                "sales_pipeline.unknown_sales_agent",
                t,
                Category.REFERENCE,
                Severity.ERROR,
                unknown_agent,
                p,
                [*PIPELINE_KEY, "sales_agent"],
                "sales_agent is not in sales_teams.csv.",
                column="sales_agent",
            ),
            mask_finding(
                "sales_pipeline.unknown_account",
                t,
                Category.REFERENCE,
                Severity.ERROR,
                unknown_account,
                p,
                [*PIPELINE_KEY, "account"],
                "account is not in accounts.csv (after the known aliases).",
                column="account",
            ),
            mask_finding(
                "accounts.unknown_parent",
                ACCOUNTS,
                Category.REFERENCE,
                Severity.WARNING,
                unknown_parent,
                accounts,
                ["account", "subsidiary_of"],
                "subsidiary_of names an account that is not in accounts.csv.",
                column="subsidiary_of",
            ),
        ]
    )


def duplicate_rules(pipeline: pd.DataFrame) -> list[Finding]:
    """Deals identical in everything but opportunity_id (kept, but they inflate counts).

    `details["with_account"]` counts the duplicates that name an account. Open deals without an
    account record only agent, product, stage and engage date, so they coincide by chance more
    often the more deals there are; the score counts only the duplicates that name an account.
    """
    columns = [c for c in pipeline.columns if c != "opportunity_id"]
    if pipeline.empty:
        return []
    mask = pipeline.duplicated(subset=columns, keep="first").to_numpy()
    finding = mask_finding(
        "sales_pipeline.duplicate_rows",
        SALES_PIPELINE,
        Category.DUPLICATE,
        Severity.WARNING,
        mask,
        pipeline,
        ["opportunity_id", *columns],
        "Rows identical to an earlier row except for opportunity_id (kept; dedupe before "
        "counting deals per agent/account).",
    )
    if finding is None:
        return []
    finding.details = {"with_account": int((mask & ~blank(pipeline["account"])).sum())}
    return [finding]


def usage_rules(
    pipeline: pd.DataFrame, accounts: pd.DataFrame, teams: pd.DataFrame
) -> list[Finding]:
    """Dimension rows nobody uses, and accounts founded after their first deal."""
    agents_without_deals = ~teams["sales_agent"].isin(pipeline["sales_agent"]).to_numpy()
    first_deal = (
        pipeline.dropna(subset=["account", "engage_date"]).groupby("account")["engage_date"].min()
    )
    first_year = accounts["account"].map(first_deal.dt.year)
    established = accounts["year_established"]
    after = (established.astype("Float64") > first_year.astype("Float64")).fillna(False)
    frame = accounts.assign(first_deal_engaged=accounts["account"].map(first_deal))
    return _present(
        [
            mask_finding(
                "sales_teams.agent_without_deals",
                SALES_TEAMS,
                Category.QUIRK,
                Severity.WARNING,
                agents_without_deals,
                teams,
                ["sales_agent", "manager", "regional_office"],
                "Agents with no deal in the pipeline: their features will be empty.",
            ),
            mask_finding(
                "accounts.established_after_first_deal",
                ACCOUNTS,
                Category.QUIRK,
                Severity.WARNING,
                after.to_numpy(dtype=bool),
                frame,
                ["account", "year_established", "first_deal_engaged"],
                "year_established is after the account's first engagement: do not derive "
                "'account age at deal' from it without clipping.",
            ),
        ]
    )


def informational_rules(pipeline: pd.DataFrame, accounts: pd.DataFrame) -> list[Finding]:
    """Properties that are true of the data and that model code must respect."""
    findings: list[Finding] = []
    p = pipeline
    stage = p["deal_stage"]
    value = p["close_value"]
    won, lost = stage.eq("Won"), stage.eq("Lost")
    closed = int((won | lost).sum())
    if closed and won.any() and lost.any():
        won_positive = bool((value[won].fillna(0) > 0).all())
        lost_zero = bool((value[lost].fillna(-1) == 0).all())
        if won_positive and lost_zero:
            findings.append(
                Finding(
                    "sales_pipeline.close_value_label_leak",
                    SALES_PIPELINE,
                    Severity.INFO,
                    closed,
                    "close_value is 0 for every Lost deal and > 0 for every Won deal: it (and "
                    "close_date) is known only after the outcome. Never use close_value or "
                    "close_date as features.",
                    examples=[
                        {"stage": "Won", "min_close_value": jsonable(value[won].min())},
                        {"stage": "Lost", "max_close_value": jsonable(value[lost].max())},
                    ],
                    category=Category.QUIRK,
                    column="close_value",
                )
            )
    first_engage, first_close = p["engage_date"].min(), p["close_date"].min()
    if pd.notna(first_engage) and pd.notna(first_close):
        gap = int((first_close - first_engage).days)
        if gap > LATE_FIRST_CLOSE_DAYS:
            findings.append(
                Finding(
                    "sales_pipeline.late_first_close",
                    SALES_PIPELINE,
                    Severity.INFO,
                    gap,
                    f"No deal closes before {jsonable(first_close)} although engagements start "
                    f"{jsonable(first_engage)} ({gap} days, the count): win rates of the first "
                    "months are censored; start training windows after the first close.",
                    examples=[
                        {
                            "first_engage_date": jsonable(first_engage),
                            "first_close_date": jsonable(first_close),
                        }
                    ],
                    category=Category.QUIRK,
                )
            )
    non_null = value.dropna()
    if len(non_null):
        findings.append(
            Finding(
                "sales_pipeline.close_value_integer",
                SALES_PIPELINE,
                Severity.INFO,
                len(non_null),
                "close_value is integer-valued (whole currency units, no cents).",
                examples=[jsonable(v) for v in non_null.drop_duplicates().head(5)],
                category=Category.QUIRK,
                column="close_value",
            )
        )
    empty_parent = blank(accounts["subsidiary_of"])
    if len(accounts) and empty_parent.mean() > MOSTLY_EMPTY:
        findings.append(
            Finding(
                "accounts.subsidiary_of_mostly_empty",
                ACCOUNTS,
                Severity.INFO,
                int(empty_parent.sum()),
                f"subsidiary_of is empty for {empty_parent.mean():.0%} of accounts: treat it as "
                "'has a parent' rather than as a category.",
                category=Category.QUIRK,
                column="subsidiary_of",
            )
        )
    return findings
