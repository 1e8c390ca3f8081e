"""One API over the data lake, on local disk or S3.

Keys are bucket-relative (`raw/accounts/snapshot=2017-12-31/...`); the local profile keeps the same
layout under `.crm/lake/<bucket>/`, so code never branches on where the lake lives.

Atomic publish: a set of objects becomes visible through a *manifest*, written last in a single
PUT (S3) or rename (disk). Data objects are written first under unique names that no manifest
mentions yet, so a reader going through `read_manifest`/`read_published` sees either the old set
or the new set, never half of one. Objects the new manifest no longer mentions are deleted after
the commit; a crash leaves orphans that the next publish of the same manifest removes.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from infra.errors import CRMError
from infra.settings import Settings

T = TypeVar("T")

# pyarrow/boto3 against SeaweedFS (and other non-AWS S3 servers) write silently corrupt objects
# with the SDKs' default request checksums; these make the SDKs checksum only when required.
S3_CHECKSUM_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
}


# Retry budget of one object-store call: ATTEMPTS tries in all (backoff 0.5, 1, 2 s between
# them, about 3.5 s), in this layer only. The S3 client does not retry by itself and no Prefect
# task or flow retries a LakeError, so a PUT is attempted at most ATTEMPTS times in total.
ATTEMPTS = 4
BACKOFF_S = 0.5


class LakeError(CRMError):
    """A lake operation failed; the message says what to check."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class Manifest:
    key: str
    txid: str
    objects: dict[str, str]  # logical key -> physical key
    metadata: dict[str, Any]


def configure_s3_environment() -> None:
    """Set the checksum variables before any AWS SDK client is built (idempotent)."""
    for name, value in S3_CHECKSUM_ENV.items():
        os.environ.setdefault(name, value)


class Lake:
    """A bucket on S3 or its mirror folder on disk."""

    def __init__(
        self,
        fs: pafs.FileSystem,
        root: str,
        uri_prefix: str,
        *,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        where: str = "",
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri_prefix = uri_prefix.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.where = where or uri_prefix

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings, bucket: str | None = None) -> Lake:
        bucket = bucket or settings.lake_bucket
        if not settings.uses_s3:
            root = settings.lake_root / bucket
            return cls(pafs.LocalFileSystem(), str(root), root.as_uri(), where=str(root))
        return cls(
            s3_filesystem(settings),
            bucket,
            f"s3://{bucket}",
            where=f"s3://{bucket} at {settings.s3_endpoint_url or 'AWS'}",
        )

    # --- addressing ---------------------------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}" if key else self.root

    def uri(self, key: str) -> str:
        """Address for engines that read the lake directly (DuckDB, Feast, pandas)."""
        if self.uri_prefix.startswith("file://"):
            return self.path(key)
        return f"{self.uri_prefix}/{key.lstrip('/')}"

    # --- single objects -----------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write one object atomically: readers see the old bytes or the new, never a part."""
        self._retry(f"write {key}", lambda: self._put(key, data))

    def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path(key)) as stream:
                return bytes(stream.read())

        try:
            return self._retry(f"read {key}", read)
        except FileNotFoundError as exc:
            raise LakeError(f"No object {self.uri(key)}: was it landed or published?") from exc

    def write_parquet(self, key: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.put_bytes(key, sink.getvalue())

    def read_parquet(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.get_bytes(key)))

    def write_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        info = self._retry(f"stat {key}", lambda: self.fs.get_file_info(self.path(key)))
        return info.type == pafs.FileType.File

    def delete(self, key: str) -> None:
        self._retry(f"delete {key}", lambda: self._delete_file(key))

    # --- listing ------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, sorted by key (the S3 client pages through results)."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        infos = self._retry(f"list {prefix}", lambda: self.fs.get_file_info(selector))
        start = len(self.root) + 1
        files = (i for i in infos if i.type == pafs.FileType.File)
        for info in sorted(files, key=lambda i: i.path):
            yield ObjectInfo(key=info.path[start:], size=info.size or 0)

    def list_partitions(self, prefix: str, name: str) -> builtins.list[str]:
        """Values of `name=` partition folders directly under `prefix` (e.g. snapshots)."""
        selector = pafs.FileSelector(self.path(prefix), recursive=False, allow_not_found=True)
        infos = self._retry(f"list {prefix}", lambda: self.fs.get_file_info(selector))
        values = {
            PurePosixPath(i.path).name.split("=", 1)[1]
            for i in infos
            if PurePosixPath(i.path).name.startswith(f"{name}=")
        }
        return sorted(values)

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    # --- atomic publish -----------------------------------------------------------------------
    def publish(
        self,
        manifest_key: str,
        objects: Mapping[str, pa.Table | bytes],
        metadata: Mapping[str, Any] | None = None,
        *,
        on_object: Callable[[str], None] | None = None,
    ) -> Manifest:
        """Write `objects` (logical key -> content) and commit them with one manifest write."""
        txid = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        previous = self.read_manifest(manifest_key) if self.exists(manifest_key) else None
        physical: dict[str, str] = {}
        for logical, content in objects.items():
            key = _versioned(logical, txid)
            if isinstance(content, pa.Table):
                self.write_parquet(key, content)
            else:
                self.put_bytes(key, content)
            physical[logical] = key
            if on_object:
                on_object(logical)
        manifest = Manifest(manifest_key, txid, physical, dict(metadata or {}))
        body = {
            "txid": txid,
            "published_at": datetime.now(UTC).isoformat(),
            "objects": physical,
            "metadata": manifest.metadata,
        }
        self.write_json(manifest_key, body)  # the commit point
        self._remove_stale(manifest, previous)
        return manifest

    def read_manifest(self, manifest_key: str) -> Manifest:
        body = self.read_json(manifest_key)
        return Manifest(manifest_key, body["txid"], body["objects"], body.get("metadata", {}))

    def read_published(self, manifest_key: str, logical_key: str) -> pa.Table:
        manifest = self.read_manifest(manifest_key)
        if logical_key not in manifest.objects:
            raise LakeError(f"{self.uri(manifest_key)} does not list {logical_key}.")
        return self.read_parquet(manifest.objects[logical_key])

    def _remove_stale(self, manifest: Manifest, previous: Manifest | None) -> None:
        live = set(manifest.objects.values()) | {manifest.key}
        folders = {str(PurePosixPath(k).parent) for k in manifest.objects}
        if previous:
            folders |= {str(PurePosixPath(k).parent) for k in previous.objects}
        logical_stems = {_stem(k) for k in manifest.objects} | {
            _stem(k) for k in (previous.objects if previous else {})
        }
        for folder in folders:
            for obj in self.list(folder):
                if obj.key in live or str(PurePosixPath(obj.key).parent) != folder:
                    continue
                if _stem(_unversioned(obj.key)) in logical_stems:
                    self.delete(obj.key)

    # --- plumbing -----------------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if isinstance(self.fs, pafs.LocalFileSystem):
            parent = str(PurePosixPath(path).parent)
            self.fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            os.replace(tmp, path)
        else:
            with self.fs.open_output_stream(path) as out:
                out.write(data)

    def _delete_file(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def _retry(self, what: str, op: Callable[[], T]) -> T:
        """Run one object-store call with the lake's retry budget (the only layer that retries).

        An I/O error (a connection refused or reset, a 5xx) is tried again `attempts` times in
        all with exponential backoff; a missing object is an answer, not an outage, and is
        raised at once. The budget is exhausted into a `LakeError`, which no task retries.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=8),
            retry=retry_if_exception_type(OSError) & retry_if_not_exception_type(FileNotFoundError),
            reraise=True,
        )
        try:
            return retrying(op)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise LakeError(
                f"Could not {what} in {self.where} after {self.attempts} attempts: {error}. "
                "Is the object store running and reachable? (`crm stack status`)"
            ) from error


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    configure_s3_environment()
    return pafs.S3FileSystem(
        access_key=settings.secret("s3_access_key_id"),
        secret_key=settings.secret("s3_secret_access_key"),
        endpoint_override=settings.s3_endpoint_host,
        scheme="https" if settings.s3_ssl else "http",
        region=settings.s3_region,
        connect_timeout=5,
        request_timeout=30,
        # No retries in the SDK: the lake's own budget (Lake._retry) is the only retry layer.
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def _versioned(logical: str, txid: str) -> str:
    path = PurePosixPath(logical)
    return str(path.with_name(f"{path.stem}.{txid}{path.suffix}"))


def _unversioned(physical: str) -> str:
    path = PurePosixPath(physical)
    stem = path.stem.rsplit(".", 1)[0] if "." in path.stem else path.stem
    return str(path.with_name(f"{stem}{path.suffix}"))


def _stem(key: str) -> str:
    return str(PurePosixPath(key).with_suffix(""))
