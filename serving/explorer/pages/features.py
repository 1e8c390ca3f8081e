"""Features: the Feast registry, freshness per view, distributions and a point-in-time lookup."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from serving.explorer import data, ui


@st.cache_data(ttl=ui.CACHE_SECONDS, show_spinner="Reading the feature table…")
def feature_table(home: str, view: str) -> pd.DataFrame:
    return data.feature_table(ui.lake(), view)


@st.cache_data(ttl=ui.CACHE_SECONDS, show_spinner="Point-in-time join…")
def point_in_time(home: str, view: str, join_key: str, key: str, at: datetime) -> pd.DataFrame:
    return data.point_in_time(ui.feature_store(), ui.lake(), view, join_key, key, at)


st.title("Features")
st.caption(
    f"Feast project **{ui.settings().feast_project}** on the {ui.settings().profile.value} profile."
)
home = str(ui.settings().home)

store, views = None, None
with ui.explained("Feature store"):
    store = ui.feature_store()
    views = data.feature_views_frame(store)

if store is not None and views is not None:
    catalog, fresh, distributions, lookup = st.tabs(
        ["Views and services", "Freshness", "Distributions", "Point in time"]
    )
    with catalog, ui.explained("Registry"):
        st.subheader("Feature views")
        st.dataframe(views, hide_index=True, width="stretch")
        st.subheader("Feature services")
        st.dataframe(data.feature_services_frame(store), hide_index=True, width="stretch")

    with fresh, ui.explained("Freshness"):
        st.subheader("Freshness per view")
        st.caption(
            "Event time of the newest offline row, and how far the online store is loaded "
            "(data time: the dataset ends in the past)."
        )
        st.dataframe(data.freshness(ui.lake(), store), hide_index=True, width="stretch")

    stored = {v.name: [c.name for c in v.entity_columns] for v in store.list_feature_views()}
    with distributions, ui.explained("Distributions"):
        st.subheader("Distributions")
        left, middle, right = st.columns(3)
        view = left.selectbox("Feature view", sorted(stored), key="dist_view")
        frame = feature_table(home, view)
        numeric = data.numeric_columns(frame, stored[view])
        if not numeric:
            st.info(f"{view} has no numeric features.")
        else:
            feature = middle.selectbox("Feature", numeric, key="dist_feature")
            rows = right.radio(
                "Rows", ["latest per entity", "every row"], horizontal=True, key="dist_rows"
            )
            shown = data.latest_rows(frame, stored[view]) if rows == "latest per entity" else frame
            hist = data.histogram(shown[feature], bins=25)
            st.altair_chart(ui.histogram_chart(hist, feature), width="stretch")
            st.dataframe(shown[feature].describe().to_frame().T, width="stretch")

    with lookup, ui.explained("Point-in-time lookup"):
        st.subheader("Point-in-time lookup")
        st.caption(
            "What Feast's historical retrieval serves for one entity at a chosen moment: the "
            "newest row at or before it (within the view's TTL), never a later one."
        )
        left, middle, right = st.columns(3)
        view = left.selectbox("Feature view", sorted(stored), key="pit_view")
        join_key = stored[view][0]
        frame = feature_table(home, view)
        keys = sorted(frame[join_key].dropna().astype(str).unique())
        key = middle.selectbox(join_key, keys, key="pit_key")
        newest = pd.Timestamp(frame[data.TIMESTAMP].max()).date()
        day = right.date_input("As of (start of day, UTC)", value=newest, key="pit_day")
        at = datetime.combine(day, time(0, 0), tzinfo=UTC)
        result = point_in_time(home, view, join_key, key, at)
        st.dataframe(result, hide_index=True, width="stretch")
        previous = point_in_time(home, view, join_key, key, at - timedelta(days=30))
        st.caption("The same entity 30 days earlier:")
        st.dataframe(previous, hide_index=True, width="stretch")
