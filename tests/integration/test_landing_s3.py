"""Landing into a real S3 server, including the server dying in the middle of a landing."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lake import Lake, LakeError
from infra.settings import Settings
from infra.stack import Stack
from ingestion import landing
from ingestion.synthetic import generate


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[tuple[Stack, Settings]]:
    """A SeaweedFS of this test's own, so killing it disturbs no other test."""
    settings = Settings(
        profile="stack",
        stack_dir=tmp_path / "stack",
        s3_endpoint_url="http://127.0.0.1:31333",
        weed_master_port=31334,
        weed_volume_port=31335,
        weed_filer_port=31336,
        _env_file=None,  # type: ignore[call-arg]
    )
    stack = Stack(settings)
    stack.up(only=["s3"])
    yield stack, settings
    stack.down(only=["s3"])


def kill_s3(stack: Stack) -> None:
    pid = int(stack.pid_file("s3").read_text())
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_s3_dying_mid_landing_leaves_no_visible_partial_snapshot(
    own_s3: tuple[Stack, Settings],
) -> None:
    stack, settings = own_s3
    lake = Lake.from_settings(settings)
    lake.attempts, lake.backoff_s = 2, 0.2
    data = generate(opportunities=2_000, seed=3)
    landing.land(lake, data, "2017-06-30", code_version="test")
    before = landing.read_snapshot(lake, "2017-06-30")

    writes = 0
    real_put = lake._put

    def put_then_die(key: str, payload: bytes) -> None:
        nonlocal writes
        real_put(key, payload)
        writes += 1
        if writes == 2:  # two tables written, two to go, manifest not yet
            kill_s3(stack)

    lake._put = put_then_die  # type: ignore[method-assign]
    newer = generate(opportunities=3_000, seed=4)
    with pytest.raises(LakeError, match="after 2 attempts"):
        landing.land(lake, newer, "2017-06-30", code_version="test")
    with pytest.raises(LakeError):
        landing.land(lake, newer, "2017-07-31", code_version="test")

    stack.up(only=["s3"])  # the same data folder: the server comes back with what it had
    lake = Lake.from_settings(settings)
    assert landing.list_snapshots(lake) == ["2017-06-30"]
    after = landing.read_snapshot(lake, "2017-06-30")
    assert {t: after[t].num_rows for t in after} == {t: before[t].num_rows for t in before}
    assert after["sales_pipeline"].equals(before["sales_pipeline"])


def test_landing_twice_on_s3_gives_identical_row_counts(stack_settings: Settings) -> None:
    lake = Lake.from_settings(stack_settings)
    data = generate(opportunities=8_800, seed=42)
    first = landing.land(lake, data, "2017-03-31", code_version="test").summary()
    second = landing.land(lake, data, "2017-03-31", code_version="test").summary()
    assert first["rows"] == second["rows"]
    pipeline_objects = [
        o for o in lake.list("raw/sales_pipeline/snapshot=2017-03-31") if o.key.endswith(".parquet")
    ]
    assert len(pipeline_objects) == 1
    assert landing.read_snapshot(lake, "2017-03-31")["sales_pipeline"].num_rows == 8_800
