"""Streamlit entry point: `streamlit run serving/explorer/app.py` (or `make explorer`).

Six pages over one profile's platform: the scored pipeline, one opportunity, the feature store,
data quality, the models and their monitoring. Which profile and scorer it talks to comes from the
settings (`CRM_PROFILE`, `CRM_HOME`, ..., `CRM_SCORER_URL`, `CRM_API_TOKEN`, from the environment
or `.env`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from infra.runtime import prepare_process
from infra.settings import get_settings, settings_problems
from serving.explorer.scoring import ScorerEndpoint

HERE = Path(__file__).parent

st.set_page_config(
    page_title="CRM win probability explorer", page_icon=":material/trending_up:", layout="wide"
)

try:
    settings = get_settings()
except ValidationError as exc:
    st.error(f"Invalid settings: {settings_problems(exc)}")
    st.stop()
prepare_process(settings)

pages = [
    st.Page(HERE / "pages" / "pipeline.py", title="Pipeline", icon=":material/work:", default=True),
    st.Page(HERE / "pages" / "opportunity.py", title="Opportunity", icon=":material/search:"),
    st.Page(HERE / "pages" / "features.py", title="Features", icon=":material/dataset:"),
    st.Page(HERE / "pages" / "quality.py", title="Data quality", icon=":material/verified:"),
    st.Page(HERE / "pages" / "models.py", title="Models", icon=":material/emoji_events:"),
    st.Page(HERE / "pages" / "monitoring.py", title="Monitoring", icon=":material/monitoring:"),
]
navigation = st.navigation(pages)
with st.sidebar:
    st.caption(
        f"Profile **{settings.profile.value}** · home `{settings.home}`  \n"
        f"Scorer `{ScorerEndpoint.from_settings(settings).url}`"
    )
navigation.run()
