"""Streamlit helpers shared by the pages: settings, cached handles and friendly errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import altair as alt
import pandas as pd
import streamlit as st

from infra.errors import CRMError
from infra.lake import Lake
from infra.settings import Settings, get_settings
from serving.explorer.errors import ExplorerError, NoData, ServiceDown

if TYPE_CHECKING:
    from feast import FeatureStore

CACHE_SECONDS = 60


def settings() -> Settings:
    return get_settings()


def lake() -> Lake:
    return Lake.from_settings(settings())


@st.cache_resource(ttl=CACHE_SECONDS, show_spinner="Opening the feature store…")
def _store(home: str, profile: str) -> FeatureStore:
    from feature_tables.store import feature_store

    store = feature_store(settings())
    store.list_feature_views()  # reach the registry now: a down registry fails here, explained
    return store


def feature_store() -> FeatureStore:
    """The profile's Feast store (registry re-read at most every CACHE_SECONDS)."""
    current = settings()
    try:
        return _store(str(current.home.resolve()), current.profile.value)
    except ExplorerError:
        raise
    except Exception as exc:
        raise ServiceDown(
            f"The feature store of the {current.profile.value} profile cannot be opened ({exc}). "
            "Register it with `make materialize`; on the stack profile start the services with "
            "`make stack-up` first."
        ) from exc


@contextmanager
def explained(what: str) -> Iterator[None]:
    """Show a user-facing error as a message instead of a traceback, then carry on."""
    try:
        yield
    except ServiceDown as exc:
        st.error(f"**{what}: service not available.** {exc}", icon=":material/power_off:")
    except NoData as exc:
        st.info(f"**{what}: nothing to show yet.** {exc}", icon=":material/info:")
    except CRMError as exc:
        st.warning(f"**{what} failed.** {exc}", icon=":material/warning:")


def fmt_usd(value: float) -> str:
    return f"${value:,.0f}"


def fmt_pct(value: float) -> str:
    return f"{value:.1%}"


def histogram_chart(hist: pd.DataFrame, title: str) -> alt.Chart:
    """Bars spanning their bins (from `data.histogram`)."""
    return (
        alt.Chart(hist)
        .mark_bar()
        .encode(
            x=alt.X("bin:Q", title=title, bin="binned"),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="count"),
            tooltip=["bin", "bin_end", "count"],
        )
    )
