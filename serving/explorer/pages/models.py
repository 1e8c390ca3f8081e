"""Models: is there a champion and does it beat the base rate; every model against the base
rate; champion vs challenger; their ROC, calibration and reliability plots; the runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import altair as alt
import streamlit as st

from serving.explorer import runs, ui

CACHE = Path(tempfile.gettempdir()) / "crm-explorer-artifacts"
PERCENT_COLUMNS = (
    "Brier skill",
    "Brier skill low",
    "Brier skill high",
    "log-loss skill",
    "log-loss skill low",
    "log-loss skill high",
)


@st.cache_data(ttl=3600, show_spinner=False)
def plot(tracking_uri: str, run_id: str, artifact_path: str) -> bytes | None:
    """A run's plot, downloaded once (artifacts of a finished run never change)."""
    client = runs.tracking_client(ui.settings())
    path = runs.artifact_file(client, run_id, artifact_path, CACHE / run_id)
    return None if path is None else path.read_bytes()


st.title("Models")
settings = ui.settings()
st.caption(f"Registered model **{settings.model_name}** · tracking `{settings.tracking_uri}`")

client = None
with ui.explained("MLflow"):
    client = runs.tracking_client(settings)
    versions = runs.aliased_versions(client, settings.model_name)

if client is not None:
    with ui.explained("Champion"):
        status = runs.champion_status(
            versions, runs.run_metrics(client, versions), settings.gate_skill_margin
        )
        show = {"success": st.success, "warning": st.warning, "error": st.error}[status.level]
        show(status.message)

    with ui.explained("Against the base rate"):
        st.subheader("Each model against the base rate")
        st.caption(
            "The base rate always predicts the training win rate. Skill = 1 − the model's "
            "Brier (or log loss) / the base rate's, on the test window; the interval resamples "
            f"opportunities. A model becomes champion only with both skills at least "
            f"{settings.gate_skill_margin:.1%} and both intervals above 0."
        )
        for version in versions.values():
            frame = runs.base_rate_frame(client, version)
            st.markdown(f"**{version.alias} v{version.version}**")
            st.dataframe(
                frame,
                hide_index=True,
                column_config={
                    **{
                        c: st.column_config.NumberColumn(format="%.4f")
                        for c in ("Brier", "log loss", "AUC")
                    },
                    **{c: st.column_config.NumberColumn(format="percent") for c in PERCENT_COLUMNS},
                },
            )

    with ui.explained("Champion vs challenger"):
        st.subheader("Champion vs challenger")
        st.caption(
            "Test-window metrics of the model each version registered (baseline or XGBoost, the "
            "better on validation), each on its own run's test window. A challenger replaces the "
            "champion only if it has skill and, with the champion re-scored on the "
            "challenger's test window, a lower Brier and log loss with paired intervals over "
            "opportunities above 0."
        )
        compare = runs.compare_frame(client, versions)
        st.dataframe(
            compare,
            hide_index=True,
            column_config={
                str(c): st.column_config.NumberColumn(format="%.4f") for c in compare.columns[1:]
            },
        )
        same = len({v.version for v in versions.values()}) == 1
        if same and len(versions) > 1:
            only = next(iter(versions.values()))
            st.info(
                f"Champion and challenger are the same version (v{only.version}): "
                "the latest training run was promoted."
            )
        shown = list(versions.values())[:1] if same else list(versions.values())
        for name, artifact in runs.PLOTS.items():
            st.markdown(f"**{name.upper() if name == 'roc' else name.capitalize()}**")
            columns = st.columns(len(shown))
            for column, version in zip(columns, shown, strict=True):
                image = plot(settings.tracking_uri, version.run_id, artifact)
                caption = f"{version.alias} v{version.version}"
                if image is None:
                    column.info(f"{caption}: run {version.run_id} logged no {artifact}.")
                else:
                    column.image(image, caption=caption)

    with ui.explained("Registered versions"):
        st.subheader("Registered versions")
        st.dataframe(runs.versions_frame(client, settings.model_name, versions), hide_index=True)

    with ui.explained("Training runs"):
        st.subheader("Training runs")
        frame = runs.runs_frame(client)
        st.dataframe(frame, hide_index=True, width="stretch")
        if len(frame) > 1:
            melted = frame.melt(
                id_vars=["run"],
                value_vars=["xgboost_test_auc", "baseline_test_auc"],
                var_name="model",
                value_name="auc",
            )
            chart = (
                alt.Chart(melted)
                .mark_line(point=True)
                .encode(
                    x=alt.X(
                        "run:O", title="training run (oldest first)", axis=alt.Axis(labelAngle=0)
                    ),
                    y=alt.Y("auc:Q", scale=alt.Scale(zero=False), title="test AUC"),
                    color="model:N",
                    tooltip=["run", "model", "auc"],
                )
            )
            st.altair_chart(chart, width="stretch")
