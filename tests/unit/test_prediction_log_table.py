"""The prediction log's Arrow conversion: timestamps go through integers (`_timestamps`), which
must give each value's instant in UTC (naive values are UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa

from serving.prediction_log import TIMESTAMP_TYPE, Served, timestamp_column, to_table

PARIS = timezone(timedelta(hours=1))


def _row(stamp: datetime | None) -> Served:
    return Served(
        request_id="r1",
        route="/score",
        served_at=datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC),
        result={"opportunity_id": "O1", "win_probability": 0.25, "as_of": stamp},
        values=(1.5, "GTX Pro"),
        names=("a__x", "b__y"),
        timestamps={"a": stamp, "b": None},
        keys={"account": "Acme"},
        engage_date=stamp,
        categorical=frozenset({"b__y"}),
    )


def test_timestamps_of_every_kind_become_their_instant_in_utc() -> None:
    stamps = [
        datetime(2017, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2017, 12, 31, 23, 59, 59, 999999),  # naive: UTC
        datetime(2018, 1, 1, 0, 30, tzinfo=PARIS),  # another offset: the same instant in UTC
        pd.Timestamp("2016-10-20 08:00:00.000001", tz="UTC"),
        datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),  # before the epoch
        None,
    ]
    table = to_table([_row(s) for s in stamps])
    # Each as its UTC instant, one zone for all: Arrow's conversion of a list that mixes offsets
    # is not reliable (it gave 00:30 for Paris's 00:30, i.e. 23:30 UTC, in one test session).
    in_utc = [
        None if s is None else s.replace(tzinfo=UTC) if s.tzinfo is None else s.astimezone(UTC)
        for s in stamps
    ]
    expected = pa.array(in_utc, TIMESTAMP_TYPE)
    assert expected[2].as_py() == datetime(2017, 12, 31, 23, 30, tzinfo=UTC)
    for column in ("as_of", "engage_date", timestamp_column("a")):
        assert table.column(column).combine_chunks().equals(expected), column
    assert table.column(timestamp_column("b")).null_count == len(stamps)
    assert table.column("served_at").type == TIMESTAMP_TYPE
    assert table.column("b__y").to_pylist() == ["GTX Pro"] * len(stamps)
