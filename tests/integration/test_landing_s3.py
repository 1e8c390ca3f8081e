"""Landing into a real S3 server: the server dying mid-landing and mid-feature-write, and two
writers of one snapshot (issue 12, defects 8 and 9). The S3 killed here is a SeaweedFS of the
test's own, so killing it disturbs no other test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from bench.reliability.context import Context
from bench.reliability.data import (
    concurrent_land,
    kill_s3,
    s3_killed_mid_feature_write,
)
from infra.lake import Lake, LakeError, LeaseHeldError, _PreconditionFailed
from infra.layout import lease_key, publish_lease_name, raw_key, raw_manifest_key
from infra.processes import port_open, wait_until
from infra.settings import Settings
from infra.stack import Stack
from ingestion import landing
from ingestion.synthetic import generate
from ingestion.tables import TABLES
from tests.support.stack import INSTANCE

# Ports of this module's own SeaweedFS, moved like the test stack's (TEST_STACK_INSTANCE).
PORTS = 31333 + 100 * INSTANCE
SNAPSHOT = "2017-06-30"
MANIFEST = raw_manifest_key(SNAPSHOT)


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[tuple[Stack, Settings]]:
    """A SeaweedFS of this test's own, so killing it disturbs no other test."""
    settings = Settings(
        profile="stack",
        stack_dir=tmp_path / "stack",
        s3_endpoint_url=f"http://127.0.0.1:{PORTS}",
        weed_master_port=PORTS + 1,
        weed_volume_port=PORTS + 2,
        weed_filer_port=PORTS + 3,
        _env_file=None,  # type: ignore[call-arg]
    )
    # The same ports serve every test of this module: the previous test's SeaweedFS (killed,
    # not waited for) may still hold one, gRPC ports (+10000) included, for a moment.
    ports = [PORTS + i + grpc for i in range(4) for grpc in (0, 10_000)]
    wait_until(
        lambda: not any(port_open(p) for p in ports), timeout_s=30, what="the S3 ports to free"
    )
    stack = Stack(settings)
    stack.up(only=["s3"])
    yield stack, settings
    stack.down(only=["s3"], grace_s=0)  # a throwaway: no clean shutdown to wait for


def versions(lake: Lake, table: str, snapshot: str = SNAPSHOT) -> list[str]:
    folder = raw_key(table, snapshot).rsplit("/", 1)[0]
    return [o.key for o in lake.list(folder) if o.key.endswith(".parquet")]


def test_s3_dying_mid_landing_leaves_no_visible_partial_snapshot(
    own_s3: tuple[Stack, Settings],
) -> None:
    stack, settings = own_s3
    lake = Lake.from_settings(settings)
    lake.attempts, lake.backoff_s = 2, 0.2
    data = generate(opportunities=2_000, seed=3)
    landing.land(lake, data, SNAPSHOT, code_version="test")
    before = landing.read_snapshot(lake, SNAPSHOT)

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
    with pytest.raises(LakeError, match="after 2 attempts") as caught:
        landing.land(lake, newer, SNAPSHOT, code_version="test")
    assert "\n" not in str(caught.value)
    with pytest.raises(LakeError):
        landing.land(lake, newer, "2017-07-31", code_version="test")

    stack.up(only=["s3"])  # the same data folder: the server comes back with what it had
    lake = Lake.from_settings(settings)
    assert landing.list_snapshots(lake) == [SNAPSHOT]
    after = landing.read_snapshot(lake, SNAPSHOT)
    assert {t: after[t].num_rows for t in after} == {t: before[t].num_rows for t in before}
    assert after["sales_pipeline"].equals(before["sales_pipeline"])
    # The killed landing's lease could not be released: the rerun takes it over (its holder
    # is gone) and commits the new data whole, sweeping the killed landing's objects.
    assert lake.exists(lease_key(publish_lease_name(MANIFEST)))
    landing.land(lake, newer, SNAPSHOT, code_version="test")
    rerun = landing.read_snapshot(lake, SNAPSHOT)
    for name in TABLES:
        assert rerun[name].equals(newer.tables[name]), name
        assert len(versions(lake, name)) == 2, name  # the rerun's and the one it replaced
    assert not lake.exists(lease_key(publish_lease_name(MANIFEST)))


def test_the_server_honours_conditional_writes(own_s3: tuple[Stack, Settings]) -> None:
    """The lease and the manifest's compare-and-swap rest on S3 If-None-Match / If-Match:
    SeaweedFS (the stack's S3) implements both, atomically."""
    _, settings = own_s3
    lake = Lake.from_settings(settings)
    key = "tests/conditional/object.json"
    first = lake._put_if(key, b'{"v": 1}', "\0absent")
    with pytest.raises(_PreconditionFailed):
        lake._put_if(key, b'{"v": 2}', "\0absent")  # If-None-Match: * on an existing object
    second = lake._put_if(key, b'{"v": 3}', first)  # If-Match on the current version
    with pytest.raises(_PreconditionFailed):
        lake._put_if(key, b'{"v": 4}', first)  # If-Match on a replaced version
    with pytest.raises(_PreconditionFailed):
        lake._delete_if(key, first)
    assert json.loads(lake.get_bytes(key)) == {"v": 3}
    lake._delete_if(key, second)
    assert not lake.exists(key)

    winners: list[int] = []
    barrier = threading.Barrier(8)
    lakes = [Lake.from_settings(settings) for _ in range(8)]

    def create(n: int) -> None:
        barrier.wait()
        try:
            lakes[n]._put_if("tests/conditional/race.json", str(n).encode(), "\0absent")
            winners.append(n)
        except _PreconditionFailed:
            pass

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(winners) == 1


def test_two_writers_of_one_snapshot_on_s3_one_wins_nothing_lost(
    own_s3: tuple[Stack, Settings],
) -> None:
    """Issue 12, defect 8: A writes its tables, B lands the same snapshot meanwhile. B used to
    delete A's objects (and A B's), leaving a committed manifest over missing files."""
    _, settings = own_s3
    first, second = Lake.from_settings(settings), Lake.from_settings(settings)
    a_data, b_data = generate(1_000, seed=5), generate(1_500, seed=6)
    a_written, b_done = threading.Event(), threading.Event()
    refused: list[str] = []

    def pause_a(logical: str) -> None:
        if logical == raw_key("sales_pipeline", SNAPSHOT):
            a_written.set()
            b_done.wait(30)

    real_publish = first.publish

    def publish_a(*args: object, **kwargs: object) -> object:
        return real_publish(*args, **kwargs, on_object=pause_a)  # type: ignore[arg-type]

    first.publish = publish_a  # type: ignore[assignment,method-assign]

    def writer_b() -> None:
        a_written.wait(30)
        try:
            landing.land(second, b_data, SNAPSHOT, code_version="b")
        except LeaseHeldError as exc:
            refused.append(str(exc))
        finally:
            b_done.set()

    thread = threading.Thread(target=writer_b)
    thread.start()
    landing.land(first, a_data, SNAPSHOT, code_version="a")
    thread.join(60)
    assert len(refused) == 1
    assert refused[0].startswith(f"snapshot {SNAPSHOT} of raw/ is being written by ")
    assert "retry after it finishes or in" in refused[0]
    lake = Lake.from_settings(settings)
    manifest = lake.read_manifest(MANIFEST)
    assert manifest.metadata["code_version"] == "a"
    assert all(lake.exists(key) for key in manifest.objects.values())
    tables = landing.read_snapshot(lake, SNAPSHOT)
    for name in TABLES:
        assert tables[name].equals(a_data.tables[name]), name
    assert landing.read_ground_truth(lake, SNAPSHOT).equals(a_data.ground_truth)
    # B retries after A finished: it lands whole, and A's generation is kept for readers
    landing.land(second, b_data, SNAPSHOT, code_version="b")
    for name in TABLES:
        assert landing.read_snapshot(lake, SNAPSHOT)[name].equals(b_data.tables[name])
        assert set(versions(lake, name)) >= {manifest.objects[raw_key(name, SNAPSHOT)]}


def test_racing_publishers_on_s3_with_a_bounded_wait_all_commit_in_turn(
    own_s3: tuple[Stack, Settings],
) -> None:
    _, settings = own_s3
    writers = 5
    lakes = [Lake.from_settings(settings, lease_wait_s=60) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    committed: list[str] = []
    key = "tests/race/t.parquet"
    manifest_key = "tests/_manifests/race/_manifest.json"

    def publish(n: int) -> None:
        barrier.wait()
        table = pa.table({"writer": [n] * 1000})
        committed.append(lakes[n].publish(manifest_key, {key: table}, {"n": n}).txid)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(committed) == writers
    lake = lakes[0]
    final = lake.read_manifest(manifest_key)
    assert final.txid == committed[-1]
    n = final.metadata["n"]
    assert lake.read_published(manifest_key, key).to_pydict() == {"writer": [n] * 1000}
    assert len([o for o in lake.list("tests/race")]) == 2


def test_s3_dying_mid_feature_write_leaves_the_previous_build_whole(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Issue 12, defect 9: the eight views are one build; a crash after three of them leaves
    the previous build, whole, and the rerun commits the new one."""
    ctx = Context(settings=stack_settings, workdir=tmp_path)
    result = s3_killed_mid_feature_write(ctx, opportunities=2_000)
    assert result["error"] and "\n" not in result["error"]
    assert result["previous_build_intact"], result
    assert result["newest_row_per_view_after_crash"] == ["2017-09-30 23:59:59"]
    assert result["rerun_whole"] and not result["missing_objects"], result
    assert not result["lease_left"] and result["max_versions_per_object"] <= 2, result
    assert result["passed"]


def test_two_concurrent_crm_land_of_one_snapshot(
    stack_env: dict[str, str], stack_settings: Settings, tmp_path: Path
) -> None:
    """Two `crm land` processes of one snapshot with different data, at once: each round is
    consistent (one writer's data whole, nothing left behind), a refusal names the winner."""
    ctx = Context(settings=stack_settings, workdir=tmp_path, env=stack_env)
    result = concurrent_land(ctx, opportunities=100_000, rounds=2)
    assert result["outcomes"] and all(o["consistent"] for o in result["outcomes"]), result
    for outcome in result["outcomes"]:
        assert outcome["won"] >= 1 and not outcome["errors"], outcome
        if outcome["refused"]:
            assert "is being written by" in outcome["refusal"]
            assert "retry after it finishes or in" in outcome["refusal"]


def test_landing_twice_on_s3_gives_identical_row_counts(stack_settings: Settings) -> None:
    lake = Lake.from_settings(stack_settings)
    data = generate(opportunities=8_800, seed=42)
    first = landing.land(lake, data, "2017-03-31", code_version="test").summary()
    second = landing.land(lake, data, "2017-03-31", code_version="test").summary()
    assert first["rows"] == second["rows"]
    pipeline_objects = [
        o for o in lake.list("raw/sales_pipeline/snapshot=2017-03-31") if o.key.endswith(".parquet")
    ]
    assert len(pipeline_objects) == 2  # the committed version and the one it replaced
    assert landing.read_snapshot(lake, "2017-03-31")["sales_pipeline"].num_rows == 8_800
