"""What every source returns: the four tables typed as `ingestion.tables.SCHEMAS`, and checksums."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa


@dataclass
class SourceData:
    """The four tables of one source, and what they were read from.

    `checksums` maps a source file name to the sha256 of its bytes. For the synthetic source they
    are the sha256 of each table's Arrow IPC stream (`<table>.arrow`) plus `parameters.json`, the
    generator's parameters: equal checksums mean identical tables.
    """

    tables: dict[str, pa.Table]
    source: str
    checksums: dict[str, str]
    ground_truth: pa.Table | None = None


def table_checksums(tables: dict[str, pa.Table]) -> dict[str, str]:
    """sha256 of each table's Arrow IPC stream: a fingerprint of generated (file-less) data."""
    checksums = {}
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        checksums[f"{name}.arrow"] = hashlib.sha256(sink.getvalue()).hexdigest()
    return checksums
