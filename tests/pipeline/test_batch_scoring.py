"""Batch scoring (`crm score --all`): every open deal of the snapshot, from the offline store,
committed under the predictions manifest, and equal to what the HTTP scorer answers online for
the same deal at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from infra.lake import Lake
from infra.layout import predictions_key, predictions_manifest_key
from infra.settings import Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE, STAGES_OPEN
from serving.batch import (
    PREDICTION_COLUMNS,
    Explanations,
    score_frame,
    score_open_deals,
    score_snapshot,
)
from serving.scorer import load_champion, open_engine
from tests.support.cli import crm
from tests.support.profiles import SNAPSHOTS, local_profile_env, prepare_local_profile
from validation.published import read_validated


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Two validated snapshots, the later one's features online, one champion."""
    home = tmp_path_factory.mktemp("batch") / ".crm"
    with local_profile_env(home) as settings:
        report = prepare_local_profile(
            settings, opportunities=3000, trainings=1, batch_scores=False
        )
        decision = report["trainings"][0].decision  # type: ignore[index]
        assert decision is not None and decision.promoted, decision
        yield settings


@pytest.fixture(scope="module")
def summary(profile: Settings) -> dict:
    return score_snapshot(profile)


def test_every_open_deal_is_scored_and_committed(profile: Settings, summary: dict) -> None:
    lake = Lake.from_settings(profile)
    snapshot = SNAPSHOTS[-1]
    pipeline = read_validated(lake, snapshot)[SALES_PIPELINE]
    is_open = pc.is_in(pipeline["deal_stage"], pa.array(STAGES_OPEN))
    open_ids = set(pipeline.filter(is_open)["opportunity_id"].to_pylist())
    assert summary["snapshot"] == snapshot and summary["rows"] == len(open_ids) > 100

    manifest = lake.read_manifest(predictions_manifest_key(snapshot))
    assert manifest.metadata["rows"] == len(open_ids)
    assert manifest.metadata["lineage"]["feature_snapshot"] == snapshot
    table = lake.read_parquet(manifest.objects[predictions_key(snapshot)])
    assert tuple(table.column_names) == PREDICTION_COLUMNS
    assert {str(v) for v in table["opportunity_id"].to_pylist()} == {str(v) for v in open_ids}
    probability = table["win_probability"].to_numpy()
    assert np.all((probability > 0) & (probability < 1)) and np.unique(probability).size > 50
    assert set(table["model_version"].to_pylist()) == {"1"}
    assert set(table["deal_stage"].to_pylist()) <= set(STAGES_OPEN)
    top = table["top_contributions"].to_pylist()
    assert all(len(row) == 5 for row in top)
    assert all(abs(row[0]["contribution"]) >= abs(row[-1]["contribution"]) for row in top)


def test_batch_scores_equal_the_online_scorer_for_the_same_deal_and_time(
    profile: Settings, summary: dict
) -> None:
    lake = Lake.from_settings(profile)
    table = lake.read_published(
        predictions_manifest_key(summary["snapshot"]), predictions_key(summary["snapshot"])
    )
    batch = table.to_pandas().set_index("opportunity_id")
    engine = open_engine(profile)
    try:
        online = engine.score_ids(list(batch.index), list(batch["as_of"].dt.to_pydatetime()))
    finally:
        engine.close()
    scored = [r for r in online if isinstance(r, dict)]
    assert len(scored) == len(batch), [r for r in online if not isinstance(r, dict)][:3]
    got = np.array([r["win_probability"] for r in scored])
    expected = batch.loc[[r["opportunity_id"] for r in scored], "win_probability"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    for r in scored[:50]:
        top = batch.at[r["opportunity_id"], "top_contributions"]
        assert [c["feature"] for c in r["contributions"]] == [c["feature"] for c in top]
        assert r["expected_value"] == pytest.approx(batch.at[r["opportunity_id"], "expected_value"])


def test_scoring_in_chunks_gives_the_rows_of_one_pass(profile: Settings, summary: dict) -> None:
    """Chunks of 97 deals (row groups of one object) hold the same rows, in the same order,
    with the same scores and explanations as the whole snapshot in one chunk."""
    loaded = load_champion(profile)
    chunked = score_open_deals(profile, chunk_rows=97, loaded=loaded)
    whole = score_open_deals(profile, chunk_rows=10**7, loaded=loaded)
    assert chunked.rows == whole.rows == summary["rows"]
    assert chunked.chunks == -(-summary["rows"] // 97) > 1 and whole.chunks == 1
    # The chunks share what they explained: every distinct input once, as in one pass.
    assert chunked.explained_rows == whole.explained_rows < whole.rows
    got, want = (pq.read_table(pa.BufferReader(s.parquet)) for s in (chunked, whole))
    assert pq.ParquetFile(pa.BufferReader(chunked.parquet)).num_row_groups == chunked.chunks
    assert got.schema == want.schema
    assert got.drop_columns(["win_probability", "expected_value", "top_contributions"]).equals(
        want.drop_columns(["win_probability", "expected_value", "top_contributions"])
    )
    np.testing.assert_allclose(got["win_probability"], want["win_probability"], rtol=0, atol=1e-12)
    assert got["top_contributions"].to_pylist() == want["top_contributions"].to_pylist()


def test_equal_inputs_are_explained_once_and_every_row_matches_xgboost(profile: Settings) -> None:
    """`score_frame` explains each distinct model input once; every row still gets exactly what
    XGBoost's own predict and TreeSHAP give for that row (the frame twice over: half of its
    rows repeat the other half)."""
    import xgboost as xgb

    from feature_tables.published import feature_build
    from feature_tables.store import feature_store
    from training.examples import open_deal_features

    lake = Lake.from_settings(profile)
    tables = read_validated(lake, SNAPSHOTS[-1])
    frame, _ = open_deal_features(
        feature_store(profile),
        tables[SALES_PIPELINE].to_pandas(),
        tables[ACCOUNTS].to_pandas(),
        feature_build(lake, SNAPSHOTS[-1]),
    )
    frame = pd.concat([frame, frame.iloc[::-1]], ignore_index=True)
    loaded = load_champion(profile)
    explanations = Explanations(top_k=5)
    probabilities, column, parts = score_frame(loaded, frame, top_k=5, explanations=explanations)
    assert parts["distinct_rows"] <= len(frame) // 2
    # The same rows again (the next chunk of a snapshot): nothing new to explain, same outputs.
    again, again_column, again_parts = score_frame(loaded, frame, 5, explanations=explanations)
    assert again_parts["distinct_rows"] == 0
    np.testing.assert_array_equal(again, probabilities)
    assert again_column.equals(column)

    model = loaded.model
    order = list(model.booster.feature_names or model.spec.columns)
    types = ["c" if name in model.spec.categorical else "q" for name in order]
    matrix = xgb.DMatrix(
        model.spec.encode(frame)[order], feature_types=types, enable_categorical=True
    )
    np.testing.assert_array_equal(
        probabilities, model.calibrator.apply(model.booster.predict(matrix))
    )
    shap = model.booster.predict(matrix, pred_contribs=True)[:, :-1]
    top = np.argsort(-np.abs(shap), axis=1, kind="stable")[:, :5]
    rows = column.to_pylist()
    for i in range(len(frame)):
        assert [c["feature"] for c in rows[i]] == [order[j] for j in top[i]]
        assert [c["contribution"] for c in rows[i]] == [float(shap[i, j]) for j in top[i]]


def test_the_cli_asks_for_all_and_names_the_snapshot_it_needs(
    profile: Settings, tmp_path: Path
) -> None:
    env = {"CRM_PROFILE": "local", "CRM_HOME": str(profile.home), "HOME": str(tmp_path)}
    bare = crm("score", env=env)
    assert bare.returncode == 2
    assert bare.stderr.strip().splitlines() == [
        "score failed: pass --all to score every open deal (one deal: POST /score)"
    ]
    other = crm("score", "--all", "--snapshot", "2017-10-31", env=env)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "run `crm features --snapshot 2017-10-31`" in other.stderr


def test_an_earlier_snapshot_is_scored_and_trained_on_its_own_features(
    profile: Settings, summary: dict
) -> None:
    """A backfill builds the earlier snapshot's features beside the current build; scoring and
    training that snapshot read its own build (lineage says so), the current one stays."""
    from feature_tables.build import build_feature_tables
    from feature_tables.published import feature_build
    from training.examples import build_examples

    lake = Lake.from_settings(profile)
    earlier, latest = SNAPSHOTS
    build_feature_tables(lake, earlier)
    assert feature_build(lake)["snapshot"] == latest  # Feast's sources stay on the newest

    scored = score_snapshot(profile, earlier)
    assert scored["snapshot"] == earlier and scored["as_of"].startswith("2017-10-01")
    manifest = lake.read_manifest(predictions_manifest_key(earlier))
    assert manifest.metadata["lineage"]["feature_snapshot"] == earlier
    assert lake.exists(predictions_manifest_key(latest))  # the later day's scores stay

    examples = build_examples(profile, earlier)
    assert examples.lineage["snapshot"] == examples.lineage["feature_snapshot"] == earlier
    assert examples.lineage["feature_txid"] == feature_build(lake, earlier)["txid"]
    assert examples.frame["event_timestamp"].max() < pd.Timestamp("2017-10-01", tz="UTC")


def test_backfill_recomputes_a_range_idempotently(prefect_harness: None, profile: Settings) -> None:
    """`crm backfill` over both snapshots: each gets its own build and its own scores, the
    current build stays the newest, and a second backfill gives the same results."""
    from feature_repo.definitions import feature_snapshots
    from feature_tables.published import feature_build
    from flows.daily import BackfillError, backfill

    lake = Lake.from_settings(profile)

    def scores(snapshot: str) -> pd.Series:
        table = lake.read_published(predictions_manifest_key(snapshot), predictions_key(snapshot))
        frame = table.to_pandas().set_index("opportunity_id")
        return frame["win_probability"].sort_index()

    first = backfill(start=SNAPSHOTS[0], end=SNAPSHOTS[-1])
    assert list(first["snapshots"]) == list(SNAPSHOTS)
    assert feature_snapshots(lake) == list(SNAPSHOTS)
    assert feature_build(lake)["snapshot"] == SNAPSHOTS[-1]
    before = {s: scores(s) for s in SNAPSHOTS}
    rows = {s: feature_build(lake, s)["rows"] for s in SNAPSHOTS}
    assert len(before[SNAPSHOTS[0]]) != len(before[SNAPSHOTS[-1]])  # two days, two sets of deals

    again = backfill(start=SNAPSHOTS[0], end=SNAPSHOTS[-1])
    # Nothing new to load online: the newest build's rows are the ones already there.
    assert first["materialized"]["opportunity"] == again["materialized"]["opportunity"] == 0
    for snapshot in SNAPSHOTS:
        pd.testing.assert_series_equal(scores(snapshot), before[snapshot])
        assert feature_build(lake, snapshot)["rows"] == rows[snapshot]

    with pytest.raises(BackfillError, match="No validated snapshot from 2016-01-01 to 2016-12-31"):
        backfill(start="2016-01-01", end="2016-12-31")


def test_the_weekly_train_trains_then_scores_with_the_champion(
    prefect_harness: None, profile: Settings
) -> None:
    """`train-weekly`: a challenger trained on the latest snapshot, gated against the champion,
    then that snapshot's open deals scored again with whichever model is champion after."""
    from flows.daily import weekly_train
    from training.registry import CHAMPION, alias_version

    summary = weekly_train(snapshot=SNAPSHOTS[-1])
    assert summary["train"]["lineage"]["feature_snapshot"] == SNAPSHOTS[-1]
    assert summary["train"]["model_version"] == "2"  # registered, promoted or not
    scored = summary["scored"]
    assert scored["snapshot"] == SNAPSHOTS[-1]
    assert scored["model"].endswith(f"v{alias_version(profile, CHAMPION)}")
    assert list(summary["seconds"]) == ["train", "score", "total"]
