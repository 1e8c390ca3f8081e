"""Monitoring: drift per feature over time, training/serving skew, realised performance against
the base rate, and data freshness per feature view — what `crm monitor` found, snapshot by snapshot.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from serving.explorer import data, monitoring, ui

st.title("Monitoring")
st.caption(
    "Is the champion still looking at the data it was trained on, and was it right? "
    "(`crm monitor`, run by crm-daily after scoring)"
)

lake = ui.lake()
snapshots: list[str] = []
with ui.explained("Monitoring reports"):
    snapshots = monitoring.report_snapshots(lake)
    if not snapshots:
        st.info(monitoring.NO_REPORT)

if snapshots:
    snapshot = st.selectbox("Snapshot", snapshots[::-1], index=0)
    with ui.explained(f"Report of {snapshot}"):
        body = monitoring.report(lake, snapshot)
        model = body["model"]
        cols = st.columns(4)
        cols[0].metric("Verdict", "ALARM" if body["alarm"] else "no alarm")
        cols[1].metric("Drifted features", len(body.get("drifted_features", [])))
        cols[2].metric("Open deals judged", f"{body['rows']:,}")
        cols[3].metric("Champion", f"{model['name']} v{model['version']}")
        st.caption(
            f"Reference: the champion's training data (snapshot {model.get('reference_snapshot')}, "
            f"{model.get('reference_rows', 0):,} rows). Thresholds: "
            + ", ".join(f"{k} {v}" for k, v in body.get("thresholds", {}).items())
        )
        for line in body.get("breaches", []):
            st.warning(line)
        html = monitoring.report_html(lake, snapshot)
        if html:
            st.download_button(
                "Download the drift report (Evidently HTML)",
                html,
                file_name=f"monitoring-{snapshot}.html",
                mime="text/html",
            )

    reports = {s: monitoring.report(lake, s) for s in snapshots}
    st.subheader("Drift per feature over time")
    history = monitoring.drift_history(reports)
    if history.empty:
        st.info("No snapshot had enough open deals to be judged (CRM_MONITOR_MIN_ROWS).")
    else:
        judged = history[history["judged"]]
        chart = (
            alt.Chart(judged)
            .mark_line(point=True)
            .encode(
                x=alt.X("snapshot:N", title="snapshot"),
                y=alt.Y("psi:Q", title="PSI against the training reference"),
                color=alt.Color("feature:N", legend=alt.Legend(orient="bottom", columns=3)),
                tooltip=["snapshot", "feature", "psi", "test", "p_value", "drifted"],
            )
        )
        limit = float(body.get("thresholds", {}).get("psi", 0.2))
        rule = alt.Chart().mark_rule(strokeDash=[4, 4]).encode(y=alt.datum(limit))
        st.altair_chart(chart + rule, width="stretch")
        latest = history[history["snapshot"] == snapshot].sort_values("psi", ascending=False)
        st.dataframe(latest, hide_index=True, width="stretch")

    st.subheader("Training/serving skew")
    skew = monitoring.skew_frame(body)
    if skew is None:
        st.info(
            "No served requests were checked for this snapshot: skew is measured on a sample of "
            "the scorer's prediction log (`make serve`, then `crm monitor`)."
        )
    elif float(skew["rate"].max()) == 0.0:
        st.success("Online and offline features agree for every feature of the sample.")
    else:
        st.error("Served features differ from what the offline store computes:")
        st.dataframe(skew, hide_index=True, width="stretch")

    st.subheader("Realised performance")
    by_week = monitoring.performance_by_week(body)
    if by_week.empty:
        st.info(
            "No scored deal has closed yet: realised performance appears once a later snapshot "
            "shows the outcome of deals scored earlier."
        )
    else:
        chart = (
            alt.Chart(by_week)
            .mark_line(point=True)
            .encode(
                x=alt.X("week:N", title="week the prediction was made"),
                y=alt.Y("brier:Q", title="Brier score (lower is better)"),
                color=alt.Color("who:N", title=""),
                tooltip=["week", "who", "brier", "pairs"],
            )
        )
        st.altair_chart(chart, width="stretch")
        st.dataframe(monitoring.performance_by_version(body), hide_index=True, width="stretch")

st.subheader("Data freshness per feature view")
with ui.explained("Freshness"):
    st.dataframe(data.freshness(lake, ui.feature_store()), hide_index=True, width="stretch")
