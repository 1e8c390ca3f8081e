"""The prediction log (issue 15, 1) behind a real scorer: a real local Feast store (SQLite online,
DuckDB offline) and a real XGBoost champion (the fixtures of `test_serving_scorer`), driven
through `ServingState` as the HTTP service drives it.

What is logged equals what was answered; a full buffer drops and counts instead of waiting; a lake
that is down costs the log its rows (counted) and the callers nothing; shutdown writes the rest.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from infra.lake import Lake
from infra.settings import Settings
from serving.prediction_log import (
    LOG_COLUMNS,
    PredictionLog,
    feature_columns,
    read_prediction_log,
    served_rows,
    timestamp_column,
    timestamp_columns,
)
from serving.scorer import ScoringEngine
from serving.state import JobResult, ScoreJob, ServingState
from tests.pipeline import test_serving_scorer as real
from tests.support.feast_reference import online_service_frame
from tests.support.servers import free_port
from tests.support.settings import make

# The same real store and model as the scorer's own tests (module-scoped fixtures, reused).
tables, store, ids, model, engine = real.tables, real.store, real.ids, real.model, real.engine


def _serve(state: ServingState, jobs: list[ScoreJob]) -> list[JobResult]:
    """Submit `jobs` concurrently, as simultaneous HTTP requests do (one micro-batch or more)."""

    async def run() -> list[JobResult]:
        return list(await asyncio.gather(*(state.batcher.submit(job) for job in jobs)))

    return asyncio.run(run())


def _jobs(open_ids: list[str]) -> list[ScoreJob]:
    singles = [ScoreJob([i], None, 3, f"req-{n}", "/score") for n, i in enumerate(open_ids[:6])]
    batch = ScoreJob([*open_ids[6:12], "NO-SUCH-DEAL"], None, 0, "req-batch", "/score_batch")
    return [*singles, batch]


def _state(settings: Settings, engine: ScoringEngine, log: PredictionLog) -> ServingState:
    state = ServingState(settings, prediction_log=log)
    state.engine = engine
    log.start()
    return state


def test_every_score_returned_is_logged_with_its_features_and_their_timestamps(
    local: Settings, engine: ScoringEngine, store: FeatureStore, ids: dict[str, list[str]]
) -> None:
    lake = Lake.from_settings(local)
    state = _state(local, engine, PredictionLog(lake, flush_s=3600))  # only shutdown writes
    results = _serve(state, _jobs(ids["open"]))
    state.stop()  # the service's shutdown hook

    answered = [
        (job, r)
        for job, rs in zip(_jobs(ids["open"]), results, strict=True)
        for r in rs
        if isinstance(r, dict)
    ]
    logged = read_prediction_log(lake)
    assert list(logged.columns[: len(LOG_COLUMNS)]) == list(LOG_COLUMNS)
    assert len(logged) == len(answered) == 12  # the unknown id got an error, not a score
    by_id = logged.set_index("opportunity_id")
    for job, result in answered:
        row = by_id.loc[result["opportunity_id"]]
        assert row["request_id"] == job.request_id and row["route"] == job.route
        assert row["probability"] == result["win_probability"]
        assert (row["model_name"], row["model_version"]) == ("crm-test-model", "7")
        assert row["as_of"] == pd.Timestamp(result["as_of"])
        for view, stamp in result["feature_timestamps"].items():
            logged_stamp = row[timestamp_column(view)]
            assert pd.isna(logged_stamp) if stamp is None else logged_stamp == pd.Timestamp(stamp)
    assert (logged["served_at"] <= pd.Timestamp(datetime.now(UTC))).all()

    # Features: the model's columns, named and valued as Feast serves them (training's names).
    assert feature_columns(logged) == engine.spec.columns
    assert len(timestamp_columns(logged)) == 1 + len(engine.views)  # the opportunity's row too
    chosen = list(by_id.index)
    feast = online_service_frame(store, chosen, [t.to_pydatetime() for t in by_id["as_of"]])
    for name in engine.spec.numeric:
        np.testing.assert_allclose(
            by_id[name].to_numpy(float), pd.to_numeric(feast[name]).to_numpy(float), rtol=1e-9
        )
    for name in engine.spec.categorical:
        expected = [None if pd.isna(v) else str(v) for v in feast[name]]
        assert [None if pd.isna(v) else v for v in by_id[name]] == expected


def test_a_full_buffer_drops_and_counts_without_waiting(
    local: Settings, engine: ScoringEngine, ids: dict[str, list[str]]
) -> None:
    drops: list[tuple[str, int]] = []
    log = PredictionLog(
        Lake.from_settings(local), buffer_rows=5, on_drop=lambda *d: drops.append(d)
    )
    # Not started: nothing empties the buffer, as when the writer is stuck on a slow lake.
    state = ServingState(local, prediction_log=log)
    state.engine = engine
    results = _serve(
        state, [ScoreJob([i], None, 3, f"r{n}", "/score") for n, i in enumerate(ids["open"][:8])]
    )
    assert all(isinstance(r[0], dict) for r in results)  # every caller got its score
    assert log.buffered + log.dropped_full == 8 and log.dropped_full >= 3
    assert sum(rows for reason, rows in drops if reason == "buffer_full") == log.dropped_full


def test_a_lake_that_is_down_costs_the_log_its_rows_and_the_callers_nothing(
    local: Settings, engine: ScoringEngine, ids: dict[str, list[str]]
) -> None:
    dead = make(  # an S3 lake on a port nobody listens on
        profile="stack",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    drops: list[tuple[str, int]] = []
    log = PredictionLog.from_settings(dead, on_drop=lambda *d: drops.append(d))
    log.max_rows = 1  # every batch wakes the writer: it meets the dead lake at once
    state = _state(local, engine, log)
    jobs = _jobs(ids["open"])
    with_log = _serve(state, jobs)
    state.stop()
    reference = ServingState(local)  # the same scorer, no log
    reference.engine = engine
    without = _serve(reference, jobs)

    def scores(results: list[JobResult]) -> list[Any]:
        return [r if isinstance(r, dict) else type(r) for rs in results for r in rs]

    assert scores(with_log) == scores(without)
    assert log.logged == 0 and log.files == 0 and log.buffered == 0
    assert log.dropped_write == 12 and sum(r for _, r in drops) == 12


def test_rows_of_two_days_go_to_their_days_and_read_back_by_range(
    local: Settings, engine: ScoringEngine, ids: dict[str, list[str]]
) -> None:
    lake = Lake.from_settings(local, bucket="two-days")  # a lake of its own: only these rows
    collected = engine.collect(ids["open"][:4])
    answers = engine.score_ids(ids["open"][:4])
    log = PredictionLog(lake)
    for n, served_at in enumerate(
        [datetime(2018, 1, 1, 23, 59, tzinfo=UTC), datetime(2018, 1, 2, 0, 1, tzinfo=UTC)]
    ):
        log.record(
            served_rows(
                f"day{n}",
                "/score",
                served_at,
                collected[2 * n : 2 * n + 2],
                answers[2 * n : 2 * n + 2],
                engine.spec.categorical,
                engine.spec.columns,
            )
        )
    assert log.flush() == 4 and log.files == 2
    assert lake.list_partitions("logs/predictions", "date") == ["2018-01-01", "2018-01-02"]
    second = read_prediction_log(lake, start=datetime(2018, 1, 2).date())
    assert list(second["request_id"]) == ["day1", "day1"]
    assert len(read_prediction_log(lake, end=datetime(2018, 1, 1).date())) == 2
    assert len(read_prediction_log(lake)) == 4
    assert read_prediction_log(lake, start=datetime(2019, 1, 1).date()).empty


@pytest.mark.parametrize("enabled", [True, False])
def test_the_settings_turn_the_log_on_and_off(local: Settings, enabled: bool) -> None:
    settings = local.model_copy(update={"serving_log_enabled": enabled})
    state = ServingState.from_settings(settings)
    assert (state.prediction_log is not None) is enabled
