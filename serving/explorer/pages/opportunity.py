"""Opportunity: one deal scored through the API, why, from which features, and what-if."""

from __future__ import annotations

from datetime import UTC, datetime, time

import altair as alt
import pandas as pd
import streamlit as st

from infra.settings import get_settings
from serving.explorer import data, scoring, ui
from serving.explorer.errors import ExplorerError


@st.cache_data(ttl=ui.CACHE_SECONDS)
def open_ids(home: str, snapshot: str) -> list[str]:
    """Open deals, those with a known account first (their features are complete)."""
    deals = data.open_deals(ui.lake(), snapshot)
    known = deals["account"] != data.NO_ACCOUNT
    return [*deals.loc[known, "opportunity_id"], *deals.loc[~known, "opportunity_id"]]


def contribution_chart(frame: pd.DataFrame) -> alt.Chart:
    shown = frame.assign(
        direction=frame["contribution"].map(lambda c: "raises" if c > 0 else "lowers"),
        label=frame["feature"] + " = " + frame["value"],
    )
    return (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X("contribution:Q", title="contribution (log-odds)"),
            y=alt.Y(
                "label:N",
                sort=alt.EncodingSortField("contribution", op="sum", order="descending"),
                title=None,
                axis=alt.Axis(labelLimit=420),
            ),
            color=alt.Color(
                "direction:N",
                scale=alt.Scale(domain=["raises", "lowers"], range=["#2e7d32", "#c62828"]),
                legend=alt.Legend(title="win probability"),
            ),
            tooltip=["feature", "value", "contribution", "view", "event_timestamp"],
        )
    )


st.title("Opportunity")
st.caption("Look up one open deal: its score from the API, what drives it and what-if changes.")

endpoint = scoring.ScorerEndpoint.from_settings(get_settings())
suggestions: list[str] = []
with ui.explained("Open deals"):
    suggestions = open_ids(str(ui.settings().home), data.latest_snapshot(ui.lake()))

left, right = st.columns([2, 1])
opportunity_id = left.text_input(
    "Opportunity id",
    value=suggestions[0] if suggestions else "",
    help=f"Any open deal; {len(suggestions):,} open in the latest snapshot.",
).strip()
pick_day = right.checkbox("Score as of a chosen day", value=False)
as_of = None
if pick_day:
    day = right.date_input("As of (start of day, UTC)", value=datetime.now(UTC).date())
    as_of = datetime.combine(day, time(0, 0), tzinfo=UTC)

score = None
if opportunity_id:
    with ui.explained(f"Scoring {opportunity_id}"):
        client = scoring.connect(endpoint)
        try:
            score = scoring.score_one(client, opportunity_id, as_of)
        except ExplorerError:
            raise
        except Exception as exc:
            raise scoring.explain(exc, endpoint) from exc

if score is not None:
    metrics = st.columns(4)
    metrics[0].metric("Win probability", ui.fmt_pct(score.win_probability))
    metrics[1].metric(
        "Expected value",
        "n/a" if score.expected_value is None else ui.fmt_usd(score.expected_value),
    )
    metrics[2].metric(
        "List price", "n/a" if score.list_price is None else ui.fmt_usd(score.list_price)
    )
    metrics[3].metric("Model version", f"v{score.model_version}")
    st.caption(
        f"Scored by **{score.model_name}** v{score.model_version} as of {score.as_of} on the "
        f"{score.profile} profile. Contributions are the model's log-odds before calibration."
    )

    contributions = scoring.contributions_frame(score)
    st.subheader("What drives this score")
    top = contributions.head(15)
    st.altair_chart(contribution_chart(top), width="stretch")

    st.subheader("Feature values and their event time")
    st.dataframe(contributions, hide_index=True, width="stretch")
    stamps = pd.DataFrame(
        sorted((score.feature_timestamps or {}).items()),
        columns=["feature view", "event_timestamp"],
    )
    st.dataframe(stamps, hide_index=True)

    st.subheader("What if")
    knobs = scoring.knobs(score)
    if not knobs:
        st.info("This score has no numeric features to vary.")
    else:
        values = scoring.feature_values(score)
        columns = st.columns(2)
        for i, knob in enumerate(knobs):
            values[knob.feature] = scoring.typed(
                knob,
                columns[i % 2].slider(
                    knob.feature,
                    min_value=knob.low,
                    max_value=knob.high,
                    value=knob.value,
                    step=knob.step,
                ),
            )
        with ui.explained("What-if scoring"):
            client = scoring.connect(endpoint)
            try:
                what_if = client.score_features(values, list_price=score.list_price)
            except Exception as exc:
                raise scoring.explain(exc, endpoint) from exc
            delta = what_if.win_probability - score.win_probability
            st.metric(
                "What-if win probability",
                ui.fmt_pct(what_if.win_probability),
                delta=f"{delta:+.1%}",
            )
