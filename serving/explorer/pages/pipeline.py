"""Pipeline: every open deal with its batch score (`crm score --all`), totals and breakdowns.

The scores are read from the lake's committed predictions, not asked of the API per deal; the
page says when they are older than the snapshot it shows, and how to refresh them.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from serving.explorer import data, ui


@st.cache_data(ttl=ui.CACHE_SECONDS, show_spinner="Reading open deals…")
def open_deals(home: str, snapshot: str) -> pd.DataFrame:
    return data.open_deals(ui.lake(), snapshot)


@st.cache_data(ttl=ui.CACHE_SECONDS, show_spinner="Reading the batch scores…")
def stored_scores(home: str, snapshot: str) -> data.StoredScores | None:
    return data.stored_scores(ui.lake(), snapshot)


st.title("Pipeline")
st.caption("Open deals of the latest validated snapshot, with the champion's batch scores.")

deals = None
with ui.explained("Open deals"):
    snapshot = data.latest_snapshot(ui.lake())
    deals = open_deals(str(ui.settings().home), snapshot)
    st.caption(f"Snapshot **{snapshot}** · {len(deals):,} open deals")

if deals is not None:
    scored = deals.assign(win_probability=float("nan"), expected_value=float("nan"))
    have_scores = False
    with ui.explained("Scores"):
        stored = stored_scores(str(ui.settings().home), snapshot)
        if stored is None:
            st.info(
                f"No batch scores for snapshot {snapshot} yet: run `crm score --all` (the "
                "crm-daily deployment does it every day once a champion exists)."
            )
        else:
            scored = deals.merge(stored.frame, on="opportunity_id", how="left")
            have_scores = True
            st.caption(
                f"Scored by {stored.model} at {stored.scored_at} UTC (snapshot {stored.snapshot})"
            )
            if stored.stale:
                st.warning(
                    f"These scores are of snapshot {stored.snapshot}, older than {snapshot}: "
                    "run `crm score --all` to score the open deals shown."
                )
            unscored = int(scored["win_probability"].isna().sum())
            if unscored:
                st.warning(f"{unscored:,} open deals have no batch score; they show unscored.")
    if not have_scores:
        st.caption("Without batch scores, the page shows the open deals and their list value.")

    with st.expander("Filters", expanded=True):
        columns = st.columns(len(data.DIMENSIONS) + 1)
        filters = {
            column: columns[i].multiselect(label, sorted(scored[column].dropna().unique()))
            for i, (column, label) in enumerate(data.DIMENSIONS.items())
        }
        filters["deal_stage"] = columns[-1].multiselect(
            "Stage", sorted(scored["deal_stage"].unique())
        )
    chosen = data.filter_deals(scored, filters)
    total = data.totals(chosen)

    metrics = st.columns(4)
    metrics[0].metric("Open deals", f"{int(total['deals']):,}")
    metrics[1].metric("List value", ui.fmt_usd(total["list_value"]))
    if have_scores:
        metrics[2].metric("Expected value", ui.fmt_usd(total["expected_value"]))
        metrics[3].metric("Mean win probability", ui.fmt_pct(total["mean_win_probability"]))

    st.subheader("Breakdown")
    by = st.selectbox(
        "Group by", list(data.DIMENSIONS), format_func=lambda c: data.DIMENSIONS[c], index=2
    )
    table = data.breakdown(chosen, by)
    value = "expected_value" if have_scores else "list_value"
    chart = (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=value.replace("_", " ") + " (USD)"),
            y=alt.Y(f"{by}:N", sort="-x", title=data.DIMENSIONS[by]),
            tooltip=[by, "deals", "list_value", "expected_value", "mean_win_probability"],
        )
    )
    left, right = st.columns([1, 1])
    left.altair_chart(chart, width="stretch")
    right.dataframe(
        table,
        hide_index=True,
        column_config={
            "list_value": st.column_config.NumberColumn(format="$%d"),
            "expected_value": st.column_config.NumberColumn(format="$%d"),
            "mean_win_probability": st.column_config.NumberColumn(
                "mean win probability", format="percent"
            ),
        },
    )

    if have_scores and len(chosen):
        st.subheader("Win probability of the open deals")
        hist = data.histogram(chosen["win_probability"], bins=20)
        st.altair_chart(ui.histogram_chart(hist, "win probability"), width="stretch")

    st.subheader("Deals")
    order = "expected_value" if have_scores else "sales_price"
    first = ["opportunity_id", "win_probability", "expected_value", "sales_price", "deal_stage"]
    rest = [c for c in chosen.columns if c not in first]
    st.dataframe(
        chosen.sort_values(order, ascending=False)[first + rest],
        hide_index=True,
        column_config={
            "win_probability": st.column_config.ProgressColumn(
                "win probability", min_value=0.0, max_value=1.0, format="%.2f"
            ),
            "expected_value": st.column_config.NumberColumn(format="$%d"),
            "sales_price": st.column_config.NumberColumn("list price", format="$%d"),
        },
    )
