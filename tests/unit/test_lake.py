from __future__ import annotations

import pyarrow as pa
import pytest

from infra.lake import Lake, LakeError
from infra.settings import Settings

MANIFEST = "raw/_manifests/snapshot=2017-12-31/_manifest.json"
KEY = "raw/accounts/snapshot=2017-12-31/accounts.parquet"


@pytest.fixture
def lake(local_settings: Settings) -> Lake:
    return Lake.from_settings(local_settings)


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


def test_republish_replaces_and_leaves_one_object(lake: Lake) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1, 2]})})
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1, 2, 3]})})
    assert lake.read_published(MANIFEST, KEY).num_rows == 3
    data_objects = [o for o in lake.list("raw/accounts") if o.key.endswith(".parquet")]
    assert len(data_objects) == 1


def test_a_publish_that_dies_midway_is_invisible(lake: Lake) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    other = "raw/products/snapshot=2017-12-31/products.parquet"

    def die(logical: str) -> None:
        if logical == KEY:
            raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError):
        lake.publish(
            MANIFEST, {KEY: pa.table({"a": [7, 8]}), other: pa.table({"p": [1]})}, on_object=die
        )
    # readers still see the old, complete snapshot
    assert lake.read_published(MANIFEST, KEY).to_pydict() == {"a": [1]}
    assert other not in lake.read_manifest(MANIFEST).objects
    # the next successful publish removes the orphan
    lake.publish(MANIFEST, {KEY: pa.table({"a": [9]})})
    assert len([o for o in lake.list("raw/accounts") if o.key.endswith(".parquet")]) == 1


def test_no_temporary_files_remain_after_writes(lake: Lake, local_settings: Settings) -> None:
    lake.publish(MANIFEST, {KEY: pa.table({"a": [1]})})
    leftovers = [p for p in local_settings.lake_root.rglob(".tmp-*")]
    assert leftovers == []
