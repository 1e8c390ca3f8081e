"""Batch scoring on Ray Data (the cluster profile's path) equals the single-node scoring.

The champion of an embedded profile scores every open deal of the snapshot twice: in this
process (`score_frame`, what the local and stack profiles run) and split into blocks across a
bounded local Ray (`score_frame_on_ray`). Probabilities, the order of the rows and every
row's top contributions must agree.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from feature_tables.published import feature_build
from feature_tables.store import feature_store
from infra.lake import Lake
from infra.ray_runtime import ray_session
from infra.settings import Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE
from serving.batch import open_deal_entities, score_frame, score_frame_on_ray, scoring_time
from serving.scorer import LoadedModel, load_champion
from tests.support.profiles import local_profile_env, prepare_local_profile
from training.examples import historical_features
from validation.published import read_validated

# The Ray path: `make test-scale-out` with the cluster profile (hosted CI too).
pytestmark = pytest.mark.scale_out


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Two validated snapshots, the later one's features built, one champion."""
    home = tmp_path_factory.mktemp("ray-batch") / ".crm"
    with local_profile_env(home) as settings:
        report = prepare_local_profile(
            settings, opportunities=3000, trainings=1, batch_scores=False
        )
        decision = report["trainings"][0].decision  # type: ignore[index]
        assert decision is not None and decision.promoted, decision
        yield settings


@pytest.fixture(scope="module")
def champion(profile: Settings) -> LoadedModel:
    return load_champion(profile)


@pytest.fixture(scope="module")
def frame(profile: Settings) -> pd.DataFrame:
    """The open deals' point-in-time features, as `score_open_deals` reads them."""
    lake = Lake.from_settings(profile)
    build = feature_build(lake, None)
    tables = read_validated(lake, str(build["snapshot"]))
    at = scoring_time(pd.Timestamp(build["as_of_end"]).date())
    entities = open_deal_entities(
        tables[SALES_PIPELINE].to_pandas(), tables[ACCOUNTS].to_pandas(), at
    )
    return historical_features(feature_store(profile), entities)


def test_ray_data_scores_equal_single_node_scores(
    profile: Settings, champion: LoadedModel, frame: pd.DataFrame
) -> None:
    want_p, want_c, _ = score_frame(champion, frame)
    bounded = profile.model_copy(update={"ray_num_cpus": 2, "ray_object_store_mb": 256})
    with ray_session(bounded):
        got_p, got_c, seconds = score_frame_on_ray(champion, frame)
    assert len(frame) > 100 and seconds["ray"] > 0
    np.testing.assert_allclose(got_p, want_p, rtol=0, atol=1e-9)
    got, want = got_c.to_pylist(), want_c.to_pylist()
    assert len(got) == len(want) == len(frame)
    for row_got, row_want in zip(got, want, strict=True):
        assert [c["feature"] for c in row_got] == [c["feature"] for c in row_want]
        assert [c["value"] for c in row_got] == [c["value"] for c in row_want]
        np.testing.assert_allclose(
            [c["contribution"] for c in row_got],
            [c["contribution"] for c in row_want],
            rtol=0,
            atol=1e-9,
        )
