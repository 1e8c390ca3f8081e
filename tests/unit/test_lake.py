from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from infra.lake import Lake, LakeError, LeaseHeldError, LeaseLostError
from infra.layout import PIPELINE_RUN_LEASE, lease_key, publish_lease_name
from infra.settings import Settings

MANIFEST = "raw/_manifests/snapshot=2017-12-31/_manifest.json"
KEY = "raw/accounts/snapshot=2017-12-31/accounts.parquet"
OTHER = "raw/products/snapshot=2017-12-31/products.parquet"
LEASE = lease_key(publish_lease_name(MANIFEST))


@pytest.fixture
def lake(local_settings: Settings) -> Lake:
    return Lake.from_settings(local_settings)


def versions(lake: Lake, folder: str = "raw/accounts") -> list[str]:
    return [o.key for o in lake.list(folder) if o.key.endswith(".parquet")]


def assert_committed_objects_exist(lake: Lake) -> None:
    for physical in lake.read_manifest(MANIFEST).objects.values():
        assert lake.exists(physical), physical


def test_local_lake_mirrors_the_s3_key_layout(lake: Lake, local_settings: Settings) -> None:
    assert lake.path(KEY) == str(local_settings.lake_root / "data-lake" / KEY)
    lake.write_parquet(KEY, pa.table({"a": [1]}))
    assert (local_settings.lake_root / "data-lake" / KEY).is_file()


def test_parquet_and_json_round_trip(lake: Lake) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    lake.write_parquet("t/x.parquet", table)
    assert lake.read_parquet("t/x.parquet").equals(table)
    lake.write_json("t/x.json", {"rows": 3})
    assert lake.read_json("t/x.json") == {"rows": 3}


def test_missing_object_is_a_clear_error(lake: Lake) -> None:
    with pytest.raises(LakeError, match="No object .*nothing.parquet"):
        lake.read_parquet("nothing.parquet")


def test_listing_is_sorted_recursive_and_complete(lake: Lake) -> None:
    keys = [f"many/p={i % 3}/obj-{i:04d}.json" for i in range(1234)]
    for key in keys:
        lake.put_bytes(key, b"{}")
    listed = [o.key for o in lake.list("many")]
    assert listed == sorted(keys)
    assert lake.list_partitions("many", "p") == ["0", "1", "2"]
    assert list(lake.list("absent")) == []


def test_publish_commits_through_the_manifest(lake: Lake) -> None:
    first = lake.publish(MANIFEST, {KEY: pa.table({"a": [1, 2]})}, {"rows": 2})
    assert lake.read_published(MANIFEST, KEY).num_rows == 2
    assert lake.read_manifest(MANIFEST).metadata == {"rows": 2}
    assert first.objects[KEY] != KEY  # data lives under a name only the manifest knows
    assert not lake.exists(LEASE)  # the lease is released after the commit


def test_republish_keeps_the_replaced_generation_and_removes_older_ones(lake: Lake) -> None:
    first = lake.publish(MANIFEST, {KEY: pa.table({"a": [1, 2]})})
    second = lake.publish(MANIFEST, {KEY: pa.table({"a": [1, 2, 3]})})
    assert lake.read_published(MANIFEST, KEY).num_rows == 3
    # a reader that read the first manifest just before still finds its object
    assert versions(lake) == sorted([first.objects[KEY], second.objects[KEY]])
    third = lake.publish(MANIFEST, {KEY: pa.table({"a": [4]})})
    assert versions(lake) == sorted([second.objects[KEY], third.objects[KEY]])


def test_a_publish_that_dies_midway_is_invisible(lake: Lake) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})

    def die(logical: str) -> None:
        if logical == KEY:
            raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError):
        lake.publish(
            MANIFEST, {KEY: pa.table({"a": [7, 8]}), OTHER: pa.table({"p": [1]})}, on_object=die
        )
    # readers still see the old, complete snapshot; the lease was given back
    assert lake.read_published(MANIFEST, KEY).to_pydict() == {"a": [1]}
    assert OTHER not in lake.read_manifest(MANIFEST).objects
    assert not lake.exists(LEASE)
    # the next successful publish removes the orphan (and keeps the generation it replaces)
    before = lake.read_manifest(MANIFEST).objects[KEY]
    after = lake.publish(MANIFEST, {KEY: pa.table({"a": [9]})}).objects[KEY]
    assert versions(lake) == sorted([before, after])


def test_no_temporary_files_remain_after_writes(lake: Lake, local_settings: Settings) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    leftovers = [p for p in local_settings.lake_root.rglob(".tmp-*")]
    assert leftovers == []


def test_a_crashed_local_write_leaves_a_tmp_file_that_is_ignored_and_cleaned(
    lake: Lake, local_settings: Settings
) -> None:
    """Issue 12, defect 8: a `.tmp-*` file made every later publish raise after its commit."""
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    leftover = Path(lake.path("raw/accounts/snapshot=2017-12-31/.tmp-0123abcd"))
    leftover.write_bytes(b"half a parquet file")
    assert all(".tmp-" not in o.key for o in lake.list("raw"))  # readers never see it
    lake.publish(MANIFEST, {KEY: pa.table({"a": [2]})})
    assert lake.read_published(MANIFEST, KEY).to_pydict() == {"a": [2]}
    assert not leftover.exists()


def test_a_foreign_file_beside_the_objects_is_left_alone(lake: Lake) -> None:
    lake.put_bytes("raw/accounts/snapshot=2017-12-31/README.txt", b"notes")
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    lake.publish(MANIFEST, {KEY: pa.table({"a": [2]})})
    assert lake.exists("raw/accounts/snapshot=2017-12-31/README.txt")


def test_two_interleaved_publishes_cannot_delete_each_others_objects(
    local_settings: Settings,
) -> None:
    """Issue 12, defect 8: A writes, B writes and commits, A commits: A's manifest pointed at
    objects B had deleted. Now B is refused while A holds the lease, and says by whom."""
    first, second = Lake.from_settings(local_settings), Lake.from_settings(local_settings)
    a_written, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause_after_writing(logical: str) -> None:
        if logical == OTHER:
            a_written.set()
            b_done.wait(10)

    def writer_a() -> None:
        tables = {KEY: pa.table({"a": [1]}), OTHER: pa.table({"p": [1]})}
        first.publish(MANIFEST, tables, {"who": "A"}, on_object=pause_after_writing)

    def writer_b() -> None:
        a_written.wait(10)
        try:
            second.publish(MANIFEST, {KEY: pa.table({"a": [2]}), OTHER: pa.table({"p": [2]})})
        except LeaseHeldError as exc:
            errors.append(exc)
        finally:
            b_done.set()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(errors) == 1
    message = str(errors[0])
    assert "snapshot 2017-12-31 of raw/ is being written by" in message
    assert f"pid {os.getpid()}" in message and "retry after it finishes or in" in message
    assert lake_manifest_metadata(first) == {"who": "A"}
    assert_committed_objects_exist(first)
    assert first.read_published(MANIFEST, KEY).to_pydict() == {"a": [1]}


def lake_manifest_metadata(lake: Lake) -> dict:
    return lake.read_manifest(MANIFEST).metadata


def test_racing_writers_with_a_bounded_wait_commit_one_after_the_other(
    local_settings: Settings,
) -> None:
    writers = 6
    lakes = [Lake.from_settings(local_settings, lease_wait_s=30) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    committed: list[str] = []

    def write(n: int) -> None:
        barrier.wait()
        manifest = lakes[n].publish(
            MANIFEST, {KEY: pa.table({"a": [n] * 50}), OTHER: pa.table({"p": [n]})}, {"n": n}
        )
        committed.append(manifest.txid)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(committed) == writers  # nobody failed, nobody was lost
    final = lakes[0].read_manifest(MANIFEST)
    assert final.txid == committed[-1]
    assert_committed_objects_exist(lakes[0])
    n = final.metadata["n"]
    assert lakes[0].read_published(MANIFEST, KEY).to_pydict() == {"a": [n] * 50}
    assert lakes[0].read_published(MANIFEST, OTHER).to_pydict() == {"p": [n]}
    assert len(versions(lakes[0])) == 2  # the committed and the replaced generation only


def write_lease(lake: Lake, **fields: object) -> None:
    now = datetime.now(UTC)
    body = {
        "name": publish_lease_name(MANIFEST),
        "owner": "someone@elsewhere pid 1 (crm land)",
        "host": "elsewhere",
        "pid": 1,
        "token": "theirs",
        "acquired_at": (now - timedelta(seconds=30)).isoformat(),
        "expires_at": (now + timedelta(seconds=90)).isoformat(),
        **fields,
    }
    lake.put_bytes(LEASE, json.dumps(body).encode())


def test_a_lease_held_elsewhere_refuses_with_who_since_when_and_how_long(lake: Lake) -> None:
    write_lease(lake)
    with pytest.raises(LeaseHeldError) as caught:
        lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    message = str(caught.value)
    assert message.startswith(
        "snapshot 2017-12-31 of raw/ is being written by someone@elsewhere pid 1 (crm land) since "
    )
    assert "retry after it finishes or in" in message
    seconds = int(message.split("or in ")[1].split(" s")[0])
    assert 80 <= seconds <= 90
    assert "\n" not in message
    assert not lake.exists(MANIFEST)


def test_an_expired_lease_is_taken_over(lake: Lake) -> None:
    write_lease(lake, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    assert lake.read_published(MANIFEST, KEY).num_rows == 1
    assert not lake.exists(LEASE)


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(lake: Lake) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lease(lake, host=socket.gethostname(), pid=dead.pid)
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    assert lake.read_published(MANIFEST, KEY).num_rows == 1


def test_a_bounded_wait_gets_the_lease_once_the_holder_finishes(local_settings: Settings) -> None:
    holder = Lake.from_settings(local_settings)
    waiter = Lake.from_settings(local_settings, lease_wait_s=10)
    name = publish_lease_name(MANIFEST)
    with holder.lease(name):
        with pytest.raises(LeaseHeldError):
            Lake.from_settings(local_settings).publish(MANIFEST, {KEY: pa.table({"a": [0]})})
        released = threading.Event()

        def publish_after_release() -> None:
            waiter.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
            released.set()

        thread = threading.Thread(target=publish_after_release)
        thread.start()
        assert not released.wait(1.0)  # still waiting while the lease is held
    thread.join(15)
    assert released.is_set()
    assert waiter.read_published(MANIFEST, KEY).to_pydict() == {"a": [1]}


def test_a_writer_that_lost_its_lease_does_not_commit(local_settings: Settings) -> None:
    slow = Lake.from_settings(local_settings, lease_ttl_s=0.2)
    fast = Lake.from_settings(local_settings)
    fast.publish(MANIFEST, {KEY: pa.table({"a": [1]})}, {"who": "first"})

    def stall_then_get_overtaken(logical: str) -> None:
        if logical == KEY:
            import time

            time.sleep(0.4)  # the lease expires: another writer takes it over and commits
            fast.publish(MANIFEST, {KEY: pa.table({"a": [2]})}, {"who": "fast"})

    with pytest.raises(LeaseLostError, match="lost its lease .* nothing of this write"):
        slow.publish(
            MANIFEST,
            {KEY: pa.table({"a": [3]}), OTHER: pa.table({"p": [3]})},
            {"who": "slow"},
            on_object=stall_then_get_overtaken,
        )
    assert fast.read_manifest(MANIFEST).metadata == {"who": "fast"}
    assert_committed_objects_exist(fast)


def test_the_commit_is_a_compare_and_swap_on_the_manifest(lake: Lake) -> None:
    """Even a writer whose lease was bypassed cannot commit over a manifest it did not read."""
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})

    def someone_commits_meanwhile(logical: str) -> None:
        body = json.loads(lake.get_bytes(MANIFEST))
        body["txid"] = "20170101T000000-00000000"
        lake.put_bytes(MANIFEST, json.dumps(body).encode())

    with pytest.raises(LakeError, match="changed by another writer during this publish"):
        lake.publish(MANIFEST, {KEY: pa.table({"a": [2]})}, on_object=someone_commits_meanwhile)
    assert lake.read_manifest(MANIFEST).txid == "20170101T000000-00000000"
    assert not lake.exists(LEASE)


def test_withdraw_removes_the_manifest_first_then_every_version(lake: Lake) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]}), OTHER: pa.table({"p": [1]})})
    lake.publish(MANIFEST, {KEY: pa.table({"a": [2]}), OTHER: pa.table({"p": [2]})})
    lake.withdraw(MANIFEST)
    assert not lake.exists(MANIFEST)
    assert list(lake.list("raw")) == []
    lake.withdraw(MANIFEST)  # nothing published: nothing to do


def test_a_lease_is_reentrant_within_a_thread(lake: Lake) -> None:
    with lake.lease(publish_lease_name(MANIFEST)):
        lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})  # the same writer: no deadlock
        assert lake.exists(LEASE)
    assert not lake.exists(LEASE)


def test_a_run_lease_is_renewed_in_the_background_past_its_time_to_live(
    local_settings: Settings,
) -> None:
    """A chain's steps do not renew the run lease: a thread does, so a run longer than the
    lease's TTL keeps it, and a second run is refused all along, naming the first."""
    import time

    runner = Lake.from_settings(local_settings, lease_ttl_s=0.4)
    other = Lake.from_settings(local_settings)
    with runner.held_for_a_run(PIPELINE_RUN_LEASE, owner="flow run crm-daily/first (1)"):
        for _ in range(3):
            time.sleep(0.4)  # a full TTL each time: without renewals it would have expired
            with pytest.raises(LeaseHeldError) as refused, other.lease(PIPELINE_RUN_LEASE):
                pass
            assert str(refused.value).startswith(
                "this lake (one pipeline run at a time) is being written by "
                "flow run crm-daily/first (1) since "
            )
    assert not runner.exists(lease_key(PIPELINE_RUN_LEASE))
    with other.lease(PIPELINE_RUN_LEASE):  # released at the end of the run
        pass


def test_a_run_whose_lease_was_taken_over_ends_with_lease_lost(local_settings: Settings) -> None:
    import time

    runner = Lake.from_settings(local_settings, lease_ttl_s=0.4)
    with (
        pytest.raises(LeaseLostError, match="lost its lease"),
        runner.held_for_a_run(PIPELINE_RUN_LEASE, owner="slow run"),
    ):
        body = json.loads(runner.get_bytes(lease_key(PIPELINE_RUN_LEASE)))
        body["token"] = "someone else's"  # another run took it over meanwhile
        runner.put_bytes(lease_key(PIPELINE_RUN_LEASE), json.dumps(body).encode())
        time.sleep(0.5)  # the next renewal finds out
