"""Feast's online rows (entity key, value proto, text, number) encoded from Arrow by column.

Feast 0.67 materialises a batch by turning every Arrow row into an `EntityKey` proto and a dict
of `Value` protos (`feast.utils._convert_arrow_to_proto`), one Python object per value, before
the online store serialises them again: at a million opportunities that conversion was most of
the time (docs/scale.md). The bytes it ends with are simple, so this module computes the same
bytes a column at a time with numpy and pyarrow:

- entity keys: Feast's serialisation v3 (`feast.infra.key_encoding_utils.serialize_entity_key`):
  key count, then per join key (sorted by name) its type and UTF-8 name, then per value its type,
  length and bytes (string: UTF-8; int64: 8 bytes little-endian);
- values: the protobuf wire form of a `Value` with one field of the oneof set (tag, then varint,
  fixed 8 bytes or length-prefixed UTF-8), or no bytes for a null, as `Value.SerializeToString`;
- `value_text`/`value_num`: as `feast.infra.online_stores.helpers.extract_text_and_num`.

Nulls follow what Feast's conversion does with `Array.to_numpy()`: a null or NaN number and a
null string or bool become an empty `Value`; a null timestamp becomes NaT and Feast stores it
as `unix_timestamp_val` = INT64_MIN. A column of another type goes through Feast's own per-value
conversion (`python_values_to_proto_values`), so every type is written, only not all fast.
`tests/unit/test_online_rows.py` holds each case equal to Feast's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

# The protobuf tag byte (field number << 3 | wire type) of each `Value` oneof field we encode.
_TAG = {
    ValueType.STRING: 0x12,  # string_val = 2, length-delimited
    ValueType.INT32: 0x18,  # int32_val = 3, varint
    ValueType.INT64: 0x20,  # int64_val = 4, varint
    ValueType.DOUBLE: 0x29,  # double_val = 5, fixed 64
    ValueType.BOOL: 0x38,  # bool_val = 7, varint
    ValueType.UNIX_TIMESTAMP: 0x40,  # unix_timestamp_val = 8, varint
}
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint8).reshape(256, 2)


@dataclass(frozen=True)
class EncodedColumn:
    """One feature column as the online table stores it."""

    value: pa.BinaryArray  # Value proto bytes (empty for a null)
    text: pa.StringArray  # value_text
    num: pa.DoubleArray  # value_num (all null unless the table has that column)


def entity_keys(
    batch: pa.RecordBatch, join_keys: Mapping[str, ValueType], version: int
) -> pa.BinaryArray | None:
    """Each row's serialised entity key; None when Feast's own path must do it (a null key, a
    key type other than string or int64, a serialisation other than v3)."""
    if version != 3 or not join_keys:
        return None
    parts: list[pa.Array | pa.Scalar] = [_scalar(struct.pack("<I", len(join_keys)))]
    names = sorted(join_keys)
    for name in names:
        encoded = name.encode("utf8")
        parts.append(_scalar(struct.pack("<II", ValueType.STRING.value, len(encoded)) + encoded))
    for name in names:
        if name not in batch.schema.names:
            return None
        column = batch.column(name)
        if column.null_count:
            return None
        kind = join_keys[name]
        if kind == ValueType.STRING and _is_string(column.type):
            data = column.cast(pa.binary())
            lengths = pc.binary_length(data).to_numpy().astype("<u4")
            parts += [_scalar(struct.pack("<I", ValueType.STRING.value)), _fixed(lengths), data]
        elif kind == ValueType.INT64 and pa.types.is_integer(column.type):
            ints = column.to_numpy(zero_copy_only=False).astype("<i8")
            parts += [_scalar(struct.pack("<II", ValueType.INT64.value, 8)), _fixed(ints)]
        else:
            return None
    return _concat(parts, len(batch))


def encode_column(column: pa.Array, value_type: ValueType, with_num: bool) -> EncodedColumn:
    """`column` as Feast would store it for a feature of `value_type`."""
    encoded = _encode_fast(column, value_type, with_num)
    if encoded is None:
        encoded = _encode_with_feast(column, value_type, with_num)
    return encoded


def hex_bytea(values: pa.BinaryArray) -> pa.StringArray:
    """Bytes in PostgreSQL's hex bytea text form (`\\x0a1b...`), for a COPY in CSV."""
    values = values.cast(pa.binary())
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
    data = np.frombuffer(values.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    digits = pa.py_buffer(_HEX[data].reshape(-1).tobytes())
    hex_offsets = pa.py_buffer(((offsets - offsets[0]) * 2).astype(np.int32).tobytes())
    text = pa.Array.from_buffers(pa.string(), len(values), [None, hex_offsets, digits])
    return pc.binary_join_element_wise(pa.scalar("\\x"), text, "")


def _encode_fast(column: pa.Array, value_type: ValueType, with_num: bool) -> EncodedColumn | None:
    kind = column.type
    n = len(column)
    if value_type == ValueType.STRING and _is_string(kind):
        data = column.cast(pa.binary())
        lengths = pc.binary_length(data).fill_null(0).to_numpy()
        value = _concat([_scalar(bytes([_TAG[value_type]])), _varint(lengths), data], n)
        return _column(value, column.cast(pa.string()), None, n, with_num)
    if value_type in (ValueType.INT64, ValueType.INT32) and pa.types.is_integer(kind):
        if value_type == ValueType.INT32 and not pa.types.is_int32(kind):
            return None  # Feast's int() of a wider integer may not fit; let it decide
        valid = column.is_valid()
        # With a null, Feast's numpy array is float64 (NaN) and int() reads the float back.
        numbers = column.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):  # NaN (the nulls) casts to garbage, masked below
            ints = numbers.astype(np.float64 if column.null_count else np.int64).astype(np.int64)
        value = _concat([_scalar(bytes([_TAG[value_type]])), _varint(ints.view(np.uint64))], n)
        text = pa.array(ints).cast(pa.string())
        return _column(value, text, ints.astype(np.float64), n, with_num, valid)
    if value_type == ValueType.DOUBLE and pa.types.is_float64(kind):
        floats = column.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = pa.array(~np.isnan(floats))  # a null is NaN in Feast's numpy array too
        value = _concat([_scalar(bytes([_TAG[value_type]])), _fixed(floats.astype("<f8"))], n)
        text = pa.array(map(repr, floats.tolist()), pa.string())  # Python's str(float)
        return _column(value, text, floats, n, with_num, valid)
    if value_type == ValueType.BOOL and pa.types.is_boolean(kind):
        flags = column.fill_null(False).to_numpy(zero_copy_only=False)
        value = _concat([_scalar(bytes([_TAG[value_type]])), _varint(flags.astype(np.uint64))], n)
        text = pc.if_else(pa.array(flags), "True", "False")
        return _column(value, text, flags.astype(np.float64), n, with_num, column.is_valid())
    if value_type == ValueType.UNIX_TIMESTAMP and pa.types.is_timestamp(kind):
        # Feast: datetime64 -> datetime64[s] -> int; NaT becomes INT64_MIN, not a null.
        seconds = column.to_numpy(zero_copy_only=False).astype("datetime64[s]").astype(np.int64)
        value = _concat([_scalar(bytes([_TAG[value_type]])), _varint(seconds.view(np.uint64))], n)
        nothing = pa.nulls(n, pa.string())
        return EncodedColumn(value, nothing, pa.nulls(n, pa.float64()))
    return None


def _encode_with_feast(column: pa.Array, value_type: ValueType, with_num: bool) -> EncodedColumn:
    """Feast's own conversion, one proto per value: for the types not encoded above."""
    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
    pairs = [extract_text_and_num(proto, with_num) for proto in protos]
    return EncodedColumn(
        pa.array([proto.SerializeToString() for proto in protos], pa.binary()),
        pa.array([text for text, _ in pairs], pa.string()),
        pa.array([num for _, num in pairs], pa.float64()),
    )


def _column(
    value: pa.BinaryArray,
    text: pa.Array,
    num: np.ndarray | None,
    n: int,
    with_num: bool,
    valid: pa.BooleanArray | None = None,
) -> EncodedColumn:
    """Nulls (where not `valid`, or where `value` is null) become an empty Value, no text or
    number; `num` is kept only if the table has `value_num`."""
    if valid is None:
        valid = value.is_valid()
    numbers = pa.array(num) if with_num and num is not None else pa.nulls(n, pa.float64())
    empty = pa.scalar(b"", pa.binary())
    return EncodedColumn(
        pc.if_else(valid, value, empty),
        pc.if_else(valid, text, pa.scalar(None, pa.string())),
        pc.if_else(valid, numbers, pa.scalar(None, pa.float64())),
    )


def _is_string(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _scalar(data: bytes) -> pa.Scalar:
    return pa.scalar(data, pa.binary())


def _fixed(values: np.ndarray) -> pa.BinaryArray:
    """Each element's little-endian bytes (as given by `values.dtype`), as a binary array."""
    width = values.dtype.itemsize
    buffer = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    fixed = pa.Array.from_buffers(pa.binary(width), len(values), [None, buffer])
    return fixed.cast(pa.binary())


def _varint(values: np.ndarray) -> pa.BinaryArray:
    """Protobuf base-128 varints of unsigned 64-bit `values` (negatives: two's complement)."""
    values = np.asarray(values).astype(np.uint64)
    groups = np.empty((len(values), 10), np.uint8)
    rest = values.copy()
    for i in range(10):
        groups[:, i] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
    # Bytes used: 1 + index of the last non-zero 7-bit group (at least one byte for zero).
    nonzero = groups != 0
    used = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    keep = np.arange(10) < used[:, None]
    groups[:, :-1] |= np.where(np.arange(1, 10) < used[:, None], 0x80, 0).astype(np.uint8)
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(used, out=offsets[1:])
    data = pa.py_buffer(groups[keep].tobytes())
    return pa.Array.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), data])


def _concat(parts: list[pa.Array | pa.Scalar], n: int) -> pa.BinaryArray:
    """Row-wise concatenation of binary arrays and scalars; null where a part is null."""
    arrays = [p if isinstance(p, pa.Scalar) else p.cast(pa.binary()) for p in parts]
    if all(isinstance(p, pa.Scalar) for p in arrays):
        return pa.array([b"".join(p.as_py() for p in arrays)] * n, pa.binary())
    return pc.binary_join_element_wise(*arrays, _scalar(b""))
