"""Data quality: the validation report of a snapshot, its quarantine and the score history."""

from __future__ import annotations

import altair as alt
import streamlit as st

from serving.explorer import data, ui

SEVERITIES = ["error", "warning", "info"]

st.title("Data quality")
st.caption("What validation decided about each landed snapshot (`make validate`).")

lake = ui.lake()
history = None
threshold: float | None = None
with ui.explained("Validation history"):
    history = data.validation_history(lake)
    if history.empty:
        data.latest_report(lake)  # raises NoData with the command to run

if history is not None and not history.empty:
    snapshots = history["snapshot"].tolist()
    snapshot = st.selectbox("Snapshot", snapshots[::-1], index=0)
    with ui.explained(f"Report of {snapshot}"):
        report = data.report(lake, snapshot)
        threshold = float(report["threshold"])
        counts = report.get("findings_by_severity", {})
        metrics = st.columns(5)
        metrics[0].metric(
            "Quality score",
            f"{report['score']:.3f}",
            delta=f"{report['score'] - report['threshold']:+.3f} vs threshold",
        )
        metrics[1].metric("Gate", "passed" if report["passed"] else "failed")
        metrics[2].metric("Errors", counts.get("error", 0))
        metrics[3].metric("Warnings", counts.get("warning", 0))
        metrics[4].metric("Info", counts.get("info", 0))
        if not report["passed"]:
            blocking = ", ".join(report.get("blocking", [])) or "score below the threshold"
            st.error(
                f"Snapshot {snapshot} was not published ({blocking}): downstream steps keep the "
                "previous validated snapshot."
            )
        st.download_button(
            "Download the HTML report",
            data.report_html(lake, snapshot),
            file_name=f"validation-{snapshot}.html",
            mime="text/html",
        )

        st.subheader("Rows per table")
        st.dataframe(data.row_counts_frame(report), hide_index=True)

        st.subheader("Findings")
        findings = data.findings_frame(report)
        chosen = st.multiselect("Severity", SEVERITIES, default=SEVERITIES)
        st.dataframe(
            findings[findings["severity"].isin(chosen)],
            hide_index=True,
            width="stretch",
        )

        st.subheader("Quarantined rows")
        quarantined = data.quarantined_rows(lake, snapshot)
        non_empty = {name: frame for name, frame in quarantined.items() if len(frame)}
        if not non_empty:
            st.success("No row of this snapshot was quarantined.")
        for name, frame in non_empty.items():
            with st.expander(f"{name}: {len(frame):,} rows", expanded=len(non_empty) == 1):
                reasons = frame["_reasons"].str.split("; ").explode().value_counts()
                st.dataframe(
                    reasons.rename("rows").rename_axis("rule").reset_index(), hide_index=True
                )
                st.dataframe(frame, hide_index=True, width="stretch")

    st.subheader("Score history")
    base = alt.Chart(history).encode(
        x=alt.X("snapshot:N", title="snapshot"),
        y=alt.Y("score:Q", scale=alt.Scale(zero=False), title="quality score"),
        tooltip=["snapshot", "score", "passed", "validated_at"],
    )
    layers = base.mark_line(color="#4c78a8") + base.mark_point(filled=True, size=80).encode(
        color=alt.Color(
            "passed:N",
            scale=alt.Scale(domain=[True, False], range=["#2e7d32", "#c62828"]),
            legend=alt.Legend(title="passed"),
        )
    )
    if threshold is not None:
        rule = alt.Chart({"values": [{"threshold": threshold}]}).mark_rule(
            strokeDash=[4, 4], color="gray"
        )
        layers += rule.encode(y="threshold:Q")
    st.altair_chart(layers, width="stretch")
    st.dataframe(history, hide_index=True)
