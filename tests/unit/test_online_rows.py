"""feature_tables.online_rows gives, byte for byte, what Feast's own conversion gives.

The reference is Feast's code itself: `_columns_to_proto_values` (Arrow -> numpy -> Value protos,
as `_convert_arrow_to_proto` does), `serialize_entity_key`, `Value.SerializeToString` and
`extract_text_and_num`. The columns hold the awkward cases: nulls, NaN, infinities, negative
and huge integers, empty and non-ASCII strings, timestamps with a zone and without, NaT.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.utils import _build_entity_keys, _columns_to_proto_values
from feast.value_type import ValueType

from feature_tables.online_rows import encode_column, entity_keys, hex_bytea

N = 9
COLUMNS: dict[str, tuple[pa.Array, ValueType]] = {
    "text": (
        pa.array(["a", "", None, "Bön ü €", "x" * 200, "y" * 20_000, 'q,"r\n', "7", None]),
        ValueType.STRING,
    ),
    "count": (
        pa.array([0, 1, -1, 2**62, -(2**63), 2**63 - 1, 127, 128, 300], pa.int64()),
        ValueType.INT64,
    ),
    "count_with_null": (
        pa.array([0, None, -5, 2**40, 2**53 + 1, None, 1, 16_384, -(2**31)], pa.int64()),
        ValueType.INT64,
    ),
    "small": (
        pa.array([0, -1, 5, None, 2**31 - 1, -(2**31), 3, 4, 1], pa.int32()),
        ValueType.INT32,
    ),
    "rate": (
        pa.array(
            [0.0, -0.0, 0.1, None, float("nan"), float("inf"), -1e-300, 1e16, 12345.678901234567]
        ),
        ValueType.DOUBLE,
    ),
    "flag": (pa.array([True, False, None, True, False, True, None, False, True]), ValueType.BOOL),
    "all_null_text": (pa.nulls(N, pa.string()), ValueType.STRING),
    "all_null_count": (pa.nulls(N, pa.int64()), ValueType.INT64),
    "day": (
        pa.array(
            [datetime(2017, 1, d + 1, 13, 5, 7, 999_999, tzinfo=UTC) for d in range(N - 1)]
            + [None],
            pa.timestamp("us", tz="UTC"),
        ),
        ValueType.UNIX_TIMESTAMP,
    ),
    "naive_day": (
        pa.array([np.datetime64("1969-12-31T23:59:59.5", "ns")] * (N - 1) + [None]),
        ValueType.UNIX_TIMESTAMP,
    ),
    "float32_rate": (pa.array([0.5, None, 1.25, 0, 1, 2, 3, 4, 5], pa.float32()), ValueType.FLOAT),
}


def _feast(column: pa.Array, value_type: ValueType, with_num: bool) -> list[tuple]:
    batch = pa.RecordBatch.from_arrays([column], names=["c"])
    protos = _columns_to_proto_values(batch, [("c", value_type)])["c"]
    return [(p.SerializeToString(), *extract_text_and_num(p, with_num)) for p in protos]


@pytest.mark.parametrize("with_num", [True, False])
@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_a_column_encodes_as_feast_serialises_it(name: str, with_num: bool) -> None:
    column, value_type = COLUMNS[name]
    encoded = encode_column(column, value_type, with_num)
    ours = list(
        zip(
            encoded.value.to_pylist(),
            encoded.text.to_pylist(),
            encoded.num.to_pylist(),
            strict=True,
        )
    )
    assert ours == _feast(column, value_type, with_num)


def test_entity_keys_serialise_as_feast_v3() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "sector": ["retail", "", "Bön", "x" * 300],
            "product": ["GTX Pro", "MG", "MG", "GTK 500"],
            "store_id": pa.array([1, -2, 2**40, 0], pa.int64()),
        }
    )
    join_keys = {"sector": ValueType.STRING, "product": ValueType.STRING}
    for keys in (join_keys, {"product": ValueType.STRING}, {"store_id": ValueType.INT64}):
        protos = _columns_to_proto_values(batch, list(keys.items()))
        expected = [
            serialize_entity_key(key, entity_key_serialization_version=3)
            for key in _build_entity_keys(batch.num_rows, keys, protos)
        ]
        assert entity_keys(batch, keys, 3).to_pylist() == expected


def test_a_null_entity_key_is_left_to_feast() -> None:
    batch = pa.RecordBatch.from_pydict({"sector": ["retail", None]})
    assert entity_keys(batch, {"sector": ValueType.STRING}, 3) is None


def test_bytes_become_postgres_hex() -> None:
    values = pa.array([b"", b"\x00\xff\x10", b"abc"], pa.binary()).slice(1)
    assert hex_bytea(values).to_pylist() == ["\\x00ff10", "\\x616263"]
