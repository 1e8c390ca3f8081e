"""Rules across columns and tables: deal-stage invariants, references, duplicates, and the
properties of the data downstream code must respect (label leak, date ranges).

Every function takes pandas frames with a RangeIndex (positions == labels) and returns findings;
error findings carry the positions of their rows so those rows can be quarantined.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ingestion.tables import ACCOUNTS, SALES_PIPELINE, SALES_TEAMS, STAGES_CLOSED, STAGES_OPEN
from validation.findings import Finding, Severity, jsonable, row_examples

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
    severity: Severity,
    mask: np.ndarray,
    frame: pd.DataFrame,
    columns: list[str],
    message: str,
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
    )


def _present(findings: Iterable[Finding | None]) -> list[Finding]:
    return [f for f in findings if f is not None]


def stage_rules(pipeline: pd.DataFrame) -> list[Finding]:
    """What each deal stage implies about account, dates and close_value."""
    p = pipeline
    stage = p["deal_stage"]
    closed = stage.isin(STAGES_CLOSED).to_numpy()
    open_ = stage.isin(STAGES_OPEN).to_numpy()
    won = stage.eq("Won").to_numpy()
    lost = stage.eq("Lost").to_numpy()
    prospecting = stage.eq("Prospecting").to_numpy()
    no_account = blank(p["account"])
    engage = p["engage_date"]
    close = p["close_date"]
    value = p["close_value"]
    has_value = value.notna().to_numpy()
    value_filled = value.fillna(0).to_numpy(dtype=np.int64)
    engaged_stage = stage.isin(("Engaging", *STAGES_CLOSED)).to_numpy()
    cols = [*PIPELINE_KEY, "account", "engage_date", "close_date", "close_value"]
    t, E, W = SALES_PIPELINE, Severity.ERROR, Severity.WARNING
    return _present(
        [
            mask_finding(
                "sales_pipeline.closed_without_account",
                t,
                E,
                closed & no_account,
                p,
                cols,
                "A Won/Lost deal has no account: closed deals must name their account.",
            ),
            mask_finding(
                "sales_pipeline.closed_without_close_date",
                t,
                E,
                closed & close.isna().to_numpy(),
                p,
                cols,
                "A Won/Lost deal has no close_date.",
            ),
            mask_finding(
                "sales_pipeline.closed_without_close_value",
                t,
                E,
                closed & ~has_value,
                p,
                cols,
                "A Won/Lost deal has no close_value.",
            ),
            mask_finding(
                "sales_pipeline.open_with_close_date",
                t,
                E,
                open_ & close.notna().to_numpy(),
                p,
                cols,
                "An open (Engaging/Prospecting) deal has a close_date.",
            ),
            mask_finding(
                "sales_pipeline.open_with_close_value",
                t,
                E,
                open_ & has_value,
                p,
                cols,
                "An open (Engaging/Prospecting) deal has a close_value.",
            ),
            mask_finding(
                "sales_pipeline.missing_engage_date",
                t,
                E,
                engaged_stage & engage.isna().to_numpy(),
                p,
                cols,
                "An Engaging/Won/Lost deal has no engage_date (only Prospecting may lack it).",
            ),
            mask_finding(
                "sales_pipeline.close_before_engage",
                t,
                E,
                (close < engage).fillna(False).to_numpy(dtype=bool),
                p,
                cols,
                "close_date is before engage_date.",
            ),
            mask_finding(
                "sales_pipeline.won_without_value",
                t,
                E,
                won & has_value & (value_filled <= 0),
                p,
                cols,
                "A Won deal has close_value <= 0: every Won deal must have a value.",
            ),
            mask_finding(
                "sales_pipeline.lost_with_value",
                t,
                E,
                lost & has_value & (value_filled != 0),
                p,
                cols,
                "A Lost deal has close_value != 0: Lost deals close at 0.",
            ),
            mask_finding(
                "sales_pipeline.prospecting_with_engage_date",
                t,
                W,
                prospecting & engage.notna().to_numpy(),
                p,
                cols,
                "A Prospecting deal already has an engage_date (expected only from Engaging on).",
            ),
            mask_finding(
                "sales_pipeline.open_without_account",
                t,
                W,
                open_ & no_account,
                p,
                cols,
                "Open deals without an account: allowed (the account is often assigned later), "
                "but account features are unavailable for them.",
            ),
        ]
    )


def reference_rules(
    pipeline: pd.DataFrame, accounts: pd.DataFrame, products: pd.DataFrame, teams: pd.DataFrame
) -> list[Finding]:
    """Every product, agent and (non-empty) account of a deal names a valid dimension row."""
    p = pipeline
    t, E = SALES_PIPELINE, Severity.ERROR
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
                E,
                unknown_product,
                p,
                [*PIPELINE_KEY, "product"],
                "product is not in products.csv (after the known aliases): add it there or "
                "to validation/aliases.py.",
            ),
            mask_finding(
                "sales_pipeline.unknown_sales_agent",
                t,
                E,
                unknown_agent,
                p,
                [*PIPELINE_KEY, "sales_agent"],
                "sales_agent is not in sales_teams.csv.",
            ),
            mask_finding(
                "sales_pipeline.unknown_account",
                t,
                E,
                unknown_account,
                p,
                [*PIPELINE_KEY, "account"],
                "account is not in accounts.csv (after the known aliases).",
            ),
            mask_finding(
                "accounts.unknown_parent",
                ACCOUNTS,
                Severity.WARNING,
                unknown_parent,
                accounts,
                ["account", "subsidiary_of"],
                "subsidiary_of names an account that is not in accounts.csv.",
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
                Severity.WARNING,
                agents_without_deals,
                teams,
                ["sales_agent", "manager", "regional_office"],
                "Agents with no deal in the pipeline: their features will be empty.",
            ),
            mask_finding(
                "accounts.established_after_first_deal",
                ACCOUNTS,
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
            )
        )
    return findings
