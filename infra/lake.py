"""One API over the data lake, on local disk or S3.

Keys are bucket-relative (`raw/accounts/snapshot=2017-12-31/...`); the local profile keeps the same
layout under `.crm/lake/<bucket>/`, so code never branches on where the lake lives.

Atomic publish: a set of objects becomes visible through a *manifest*, written last in a single
PUT (S3) or rename (disk). Data objects are written first under unique names that no manifest
mentions yet, so a reader going through `read_manifest`/`read_published` sees either the old set
or the new set, never half of one.

One writer at a time: a publish holds a *lease* on its manifest (`_leases/<stage>/snapshot=D.json`,
`infra.layout.publish_lease_name`), taken with a conditional create (S3 `If-None-Match: *`, an
exclusive create on disk) and renewed with `If-Match` while the objects are written. A second
writer fails at once (or after `wait_s`) with a message naming the holder; a lease whose holder
died (its time-to-live passed, or its process on this host is gone) is taken over. The commit
itself is a compare-and-swap on the manifest (`If-Match` on the version it replaces), so even a
writer that lost its lease cannot commit over another.

What a publish deletes: after its commit, objects of the same logical keys that neither the new
manifest nor the one it replaced reference (the replaced generation is kept until the next
publish, for readers in flight and a Feast registry not yet re-applied), and crash leftovers
(`.tmp-*` files of a local write cut short, objects of a writer that died before its commit).
Objects referenced by the committed manifest are never deleted. Readers never see leftovers:
they read through manifests, and `list` skips hidden `.tmp-*` files.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import getpass
import hashlib
import io
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path, PurePosixPath
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
from infra.layout import RUNS_PREFIX, lease_key, publish_lease_name
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

# A writer's lease lives LEASE_TTL_S after its last renewal; a publish renews it before each
# object it writes once a quarter of that has passed, so only a writer that stopped (killed, or
# cut off from the store) loses it. A second writer waits LEASE_WAIT_S for it (0: fails at once
# with the holder's name), polling every LEASE_POLL_S.
LEASE_TTL_S = 120.0
LEASE_WAIT_S = 0.0
LEASE_POLL_S = 0.5

# `<stem>.<txid><suffix>`: the physical name of a published object (txid: time + 8 hex digits).
_VERSIONED = re.compile(r"^(?P<stem>.+)\.(?P<txid>\d{8}T\d{6}-[0-9a-f]{8})(?P<suffix>\.[^./]+)?$")
TMP_PREFIX = ".tmp-"
# The codec of every Parquet object the project writes to the lake.
PARQUET_COMPRESSION = "zstd"

log = logging.getLogger(__name__)


class LakeError(CRMError):
    """A lake operation failed; the message says what to check."""


class LeaseHeldError(LakeError):
    """Another writer holds the lease on what this one wants to write; retry after it finishes."""


class LeaseLostError(LakeError):
    """A writer's lease expired and was taken over before it committed; nothing was committed."""


class _PreconditionFailed(Exception):
    """A conditional write or delete found another version than the one it expected."""


class _Unsupported(Exception):
    """The S3 server does not implement a conditional request (501)."""


_ABSENT = "\0absent"  # expected version of an object that must not exist yet
_HELD_TOKENS: set[str] = set()  # tokens of the leases this process holds right now


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


@dataclass
class Lease:
    """One writer's hold on `name` (see `Lake.lease`); `keep()` renews it while work goes on."""

    lake: Lake
    name: str
    token: str
    owner: str
    acquired_at: datetime
    ttl_s: float
    etag: str
    renewed: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return lease_key(self.name)

    def body(self) -> bytes:
        now = datetime.now(UTC)
        return json.dumps(
            {
                "name": self.name,
                "owner": self.owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "token": self.token,
                "acquired_at": self.acquired_at.isoformat(),
                "renewed_at": now.isoformat(),
                "expires_at": (now + timedelta(seconds=self.ttl_s)).isoformat(),
                "ttl_s": self.ttl_s,
            },
            indent=2,
        ).encode()

    def keep(self, *, force: bool = False) -> None:
        """Renew the lease if a quarter of its time-to-live has passed (or now, with `force`).

        Raises `LeaseLostError` if another writer took it over: this one must not commit.
        """
        if not force and time.monotonic() - self.renewed < self.ttl_s / 4:
            return
        body = self.body()
        try:
            self.etag = self.lake._retry(
                f"renew the lease {self.key}",
                lambda: self.lake._put_if(self.key, body, self.etag),
            )
        except (_PreconditionFailed, FileNotFoundError):
            holder, etag = self.lake._read_lease(self.name)
            if holder.get("token") != self.token or etag is None:
                raise LeaseLostError(
                    f"{_subject(self.name)}: this writer ({self.owner}) lost its lease to "
                    f"{holder.get('owner', 'another writer')} (it was not renewed within "
                    f"{self.ttl_s:.0f} s); nothing of this write was committed. Run it again."
                ) from None
            self.etag = etag  # an earlier attempt of this renewal went through
        self.renewed = time.monotonic()

    def release(self) -> None:
        """Give the lease up (one attempt: if the store is down, the lease expires by itself)."""
        _HELD_TOKENS.discard(self.token)
        try:
            self.lake._delete_if(self.key, self.etag)
        except (_PreconditionFailed, FileNotFoundError):
            pass  # taken over or gone: not ours to remove
        except (OSError, LakeError) as error:
            log.warning(
                "Could not release the lease %s (%s); it expires by itself.", self.key, error
            )


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
        s3_client: Callable[[], Any] | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        lease_wait_s: float = LEASE_WAIT_S,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri_prefix = uri_prefix.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.where = where or uri_prefix
        # Conditional writes (leases, the manifest's compare-and-swap) need the S3 API itself:
        # pyarrow's filesystem has no If-None-Match / If-Match. None: the local disk.
        self._s3_factory = s3_client
        self._s3_client: Any = None
        self.lease_ttl_s = lease_ttl_s
        self.lease_wait_s = lease_wait_s
        self._local = threading.local()  # the leases each thread holds (a publish re-enters)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        bucket: str | None = None,
        *,
        lease_ttl_s: float = LEASE_TTL_S,
        lease_wait_s: float = LEASE_WAIT_S,
    ) -> Lake:
        bucket = bucket or settings.lake_bucket
        if not settings.uses_s3:
            root = settings.lake_root / bucket
            return cls(
                pafs.LocalFileSystem(),
                str(root),
                root.as_uri(),
                where=str(root),
                lease_ttl_s=lease_ttl_s,
                lease_wait_s=lease_wait_s,
            )
        return cls(
            s3_filesystem(settings),
            bucket,
            f"s3://{bucket}",
            where=f"s3://{bucket} at {settings.s3_endpoint_url or 'AWS'}",
            s3_client=partial(s3_client, settings),
            lease_ttl_s=lease_ttl_s,
            lease_wait_s=lease_wait_s,
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
        pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
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
        """Every object under `prefix`, sorted by key (the S3 client pages through results).

        Hidden names (`.tmp-*`: a local write cut short) are not objects and are skipped.
        """
        for info in self._list_all(prefix):
            if not PurePosixPath(info.key).name.startswith("."):
                yield info

    def _list_all(self, prefix: str) -> builtins.list[ObjectInfo]:
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        infos = self._retry(f"list {prefix}", lambda: self.fs.get_file_info(selector))
        start = len(self.root) + 1
        files = (i for i in infos if i.type == pafs.FileType.File)
        return [
            ObjectInfo(key=i.path[start:], size=i.size or 0)
            for i in sorted(files, key=lambda i: i.path)
        ]

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

    # --- leases: one writer at a time ---------------------------------------------------------
    @contextlib.contextmanager
    def lease(
        self, name: str, *, wait_s: float | None = None, owner: str | None = None
    ) -> Iterator[Lease]:
        """Hold the lease `name` for the block (re-entrant within a thread).

        If another writer holds it, wait up to `wait_s` (default `lease_wait_s`) for it to be
        released, then raise `LeaseHeldError` naming the holder and when to retry. `owner` is
        how a waiting writer is told who holds it (default: user@host, pid and command).
        """
        held: dict[str, Lease] = self._held()
        if name in held:
            yield held[name]
            return
        lease = self._acquire(name, self.lease_wait_s if wait_s is None else wait_s, owner)
        held[name] = lease
        try:
            yield lease
        finally:
            del held[name]
            lease.release()

    def _held(self) -> dict[str, Lease]:
        held: dict[str, Lease] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    @contextlib.contextmanager
    def held_for_a_run(
        self, name: str, *, owner: str | None = None, wait_s: float | None = None
    ) -> Iterator[Lease]:
        """`lease` for a long run whose steps do not renew it: a background thread renews it
        every quarter of its time-to-live. An outage of the store skips a renewal (the next one
        tries again); if another writer took the lease over, the run ends with `LeaseLostError`.
        """
        with self.lease(name, wait_s=wait_s, owner=owner) as lease:
            stop = threading.Event()
            lost: list[LeaseLostError] = []

            def renew() -> None:
                while not stop.wait(self.lease_ttl_s / 4):
                    try:
                        lease.keep(force=True)
                    except LeaseLostError as exc:
                        lost.append(exc)
                        return
                    except (OSError, LakeError) as exc:
                        log.warning("Could not renew the lease %s (%s).", lease.key, exc)

            renewer = threading.Thread(target=renew, name=f"lease {name}", daemon=True)
            renewer.start()
            try:
                yield lease
            finally:
                stop.set()
                renewer.join(timeout=self.lease_ttl_s / 4)
            if lost:
                raise lost[0]

    def _acquire(self, name: str, wait_s: float, owner: str | None = None) -> Lease:
        lease = Lease(
            self,
            name,
            uuid.uuid4().hex,
            owner or _owner(),
            datetime.now(UTC),
            self.lease_ttl_s,
            "",
        )
        _HELD_TOKENS.add(lease.token)  # before the create: other threads see it as live
        try:
            lease.etag = self._take(lease, deadline=time.monotonic() + wait_s)
        except BaseException:
            _HELD_TOKENS.discard(lease.token)
            raise
        lease.renewed = time.monotonic()
        return lease

    def _take(self, lease: Lease, deadline: float) -> str:
        """Create the lease object, or take it over from a holder that abandoned it; its version."""
        key = lease.key
        while True:
            body = lease.body()
            try:
                return self._retry(
                    f"take the lease {key}", partial(self._put_if, key, body, _ABSENT)
                )
            except _PreconditionFailed:
                pass
            holder, etag = self._read_lease(lease.name)
            if etag is None:
                continue  # released meanwhile: try again at once
            if holder.get("token") == lease.token:
                return etag  # an earlier attempt of this create went through
            if _abandoned(holder):
                try:
                    taken = self._retry(
                        f"take over the lease {key}", partial(self._put_if, key, body, etag)
                    )
                except _PreconditionFailed:
                    continue  # someone else took it over first
                log.warning("Took over the abandoned lease %s of %s.", key, holder.get("owner"))
                return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseHeldError(_held_message(lease.name, holder))
            time.sleep(min(LEASE_POLL_S, remaining))

    def _read_lease(self, name: str) -> tuple[dict[str, Any], str | None]:
        """The lease's body and version, or ({}, None) if nobody holds it."""
        found = self._retry(f"read the lease {name}", lambda: self._get_versioned(lease_key(name)))
        if found is None:
            return {}, None
        data, etag = found
        try:
            body = json.loads(data)
        except ValueError:
            body = {}  # unreadable: treated as abandoned
        return (body if isinstance(body, dict) else {}), etag

    # --- atomic publish -----------------------------------------------------------------------
    def publish(
        self,
        manifest_key: str,
        objects: Mapping[str, pa.Table | bytes],
        metadata: Mapping[str, Any] | None = None,
        *,
        on_object: Callable[[str], None] | None = None,
        wait_s: float | None = None,
    ) -> Manifest:
        """Write `objects` (logical key -> content) and commit them with one manifest write.

        Holds the manifest's lease throughout (`LeaseHeldError` if another writer has it); the
        commit is a compare-and-swap on the manifest version read at the start.
        """
        with self.lease(publish_lease_name(manifest_key), wait_s=wait_s) as lease:
            found = self._retry(f"read {manifest_key}", lambda: self._get_versioned(manifest_key))
            previous = _parse_manifest(manifest_key, found[0]) if found else None
            expected = found[1] if found else _ABSENT
            txid = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
            physical: dict[str, str] = {}
            for logical, content in objects.items():
                lease.keep()
                key = _versioned(logical, txid)
                if isinstance(content, pa.Table):
                    self.write_parquet(key, content)
                else:
                    self.put_bytes(key, content)
                physical[logical] = key
                if on_object:
                    on_object(logical)
            manifest = Manifest(manifest_key, txid, physical, dict(metadata or {}))
            body = json.dumps(
                {
                    "txid": txid,
                    "published_at": datetime.now(UTC).isoformat(),
                    "objects": physical,
                    "metadata": manifest.metadata,
                },
                indent=2,
                sort_keys=True,
                default=str,
            ).encode()
            lease.keep(force=True)  # still the one writer: only then commit
            self._commit(manifest_key, body, expected, txid)
            self._clean_after(manifest, previous)
            return manifest

    def read_manifest(self, manifest_key: str) -> Manifest:
        return _parse_manifest(manifest_key, self.get_bytes(manifest_key))

    def read_published(self, manifest_key: str, logical_key: str) -> pa.Table:
        manifest = self.read_manifest(manifest_key)
        if logical_key not in manifest.objects:
            raise LakeError(f"{self.uri(manifest_key)} does not list {logical_key}.")
        return self.read_parquet(manifest.objects[logical_key])

    def withdraw(self, manifest_key: str, logical_keys: Iterable[str] = ()) -> None:
        """Unpublish: remove the manifest (the commit point) first, then every version of its
        objects (and of `logical_keys`), under the same lease as a publish."""
        with self.lease(publish_lease_name(manifest_key)):
            found = self._retry(f"read {manifest_key}", lambda: self._get_versioned(manifest_key))
            logical = set(logical_keys)
            if found:
                logical |= set(_parse_manifest(manifest_key, found[0]).objects)
                try:
                    self._retry(
                        f"delete {manifest_key}", lambda: self._delete_if(manifest_key, found[1])
                    )
                except FileNotFoundError:
                    pass
                except _PreconditionFailed:
                    raise LakeError(
                        f"{self.uri(manifest_key)} was changed by another writer while it was "
                        "being withdrawn: run the withdrawal again."
                    ) from None
            self._sweep(logical, keep=set())

    def _commit(self, manifest_key: str, body: bytes, expected: str, txid: str) -> None:
        """Write the manifest if it is still the version this publish started from."""
        try:
            self._retry(
                f"commit {manifest_key}", lambda: self._put_if(manifest_key, body, expected)
            )
        except (_PreconditionFailed, FileNotFoundError):
            found = self._retry(f"read {manifest_key}", lambda: self._get_versioned(manifest_key))
            if found and json.loads(found[0]).get("txid") == txid:
                return  # an earlier attempt of this commit went through
            raise LakeError(
                f"{self.uri(manifest_key)} was changed by another writer during this publish: "
                "nothing of this publish was committed (its objects are removed by the next "
                "publish). Run it again."
            ) from None

    def _clean_after(self, manifest: Manifest, previous: Manifest | None) -> None:
        """Remove what the new manifest superseded, keeping the generation it replaced."""
        keep = {manifest.key, *manifest.objects.values()}
        if previous:
            keep |= set(previous.objects.values())
        logical = set(manifest.objects) | set(previous.objects if previous else ())
        try:
            self._sweep(logical, keep)
        except LakeError as error:  # committed all the same: the next publish sweeps again
            log.warning("Published %s but could not clean up: %s", manifest.key, error)

    def _sweep(self, logical_keys: Iterable[str], keep: set[str]) -> None:
        """Delete the versions of `logical_keys` not in `keep`, and crash leftovers beside them."""
        names: dict[str, set[str]] = {}
        for key in logical_keys:
            path = PurePosixPath(key)
            names.setdefault(str(path.parent), set()).add(path.name)
        for folder, logical in names.items():
            for obj in self._list_all(folder):
                path = PurePosixPath(obj.key)
                if obj.key in keep or str(path.parent) != folder:
                    continue
                version = _VERSIONED.match(path.name)
                of = f"{version['stem']}{version['suffix'] or ''}" if version else None
                if path.name.startswith(TMP_PREFIX) or of in logical:
                    self.delete(obj.key)

    # --- conditional writes (leases, manifests) -----------------------------------------------
    def _get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version tag (S3 ETag; a content hash on disk), or None."""
        if self._s3_factory is None:
            try:
                data = Path(self.path(key)).read_bytes()
            except FileNotFoundError:
                return None
            return data, hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            response = self._s3_call(
                lambda: self._s3().get_object(Bucket=self.root, Key=key.lstrip("/"))
            )
            return bytes(response["Body"].read()), str(response["ETag"])
        except FileNotFoundError:
            return None

    def _put_if(self, key: str, data: bytes, expected: str) -> str:
        """Write `data` only if the object's version is `expected` (`_ABSENT`: if it does not
        exist); the new version, or `_PreconditionFailed`."""
        if self._s3_factory is None:
            with self._folder_lock(key):
                current = self._get_versioned(key)
                if (current[1] if current else _ABSENT) != expected:
                    raise _PreconditionFailed(key)
                self._put(key, data)
            return hashlib.md5(data, usedforsecurity=False).hexdigest()
        condition = {"IfNoneMatch": "*"} if expected == _ABSENT else {"IfMatch": expected}
        response = self._s3_call(
            lambda: self._s3().put_object(
                Bucket=self.root, Key=key.lstrip("/"), Body=data, **condition
            )
        )
        return str(response["ETag"])

    def _delete_if(self, key: str, expected: str) -> None:
        """Delete the object only if its version is `expected` (one attempt)."""
        if self._s3_factory is None:
            with self._folder_lock(key):
                current = self._get_versioned(key)
                if current is None:
                    raise FileNotFoundError(key)
                if current[1] != expected:
                    raise _PreconditionFailed(key)
                self._delete_file(key)
            return
        try:
            self._s3_call(
                lambda: self._s3().delete_object(
                    Bucket=self.root, Key=key.lstrip("/"), IfMatch=expected
                )
            )
        except _Unsupported:  # a server without conditional deletes: check, then delete
            current = self._get_versioned(key)
            if current is None:
                raise FileNotFoundError(key) from None
            if current[1] != expected:
                raise _PreconditionFailed(key) from None
            self._delete_file(key)

    @contextlib.contextmanager
    def _folder_lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on the key's folder (disk only): check-then-write as one step."""
        folder = Path(self.path(key)).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _s3(self) -> Any:
        if self._s3_client is None:
            assert self._s3_factory is not None
            self._s3_client = self._s3_factory()
        return self._s3_client

    @staticmethod
    def _s3_call(op: Callable[[], T]) -> T:
        """One boto3 call, its errors in the lake's terms: a failed condition, a missing object,
        an outage (OSError: `_retry` tries again) or a refusal (LakeError)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return op()
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            code = str(error.response.get("Error", {}).get("Code", ""))
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _PreconditionFailed(code) from None
            if status == 404 or code in ("NoSuchKey", "NotFound"):
                raise FileNotFoundError(code) from None
            if status == 501 or code == "NotImplemented":
                raise _Unsupported(code) from None
            if status >= 500 or status in (0, 408, 429):
                raise OSError(f"S3 answered {status} {code}") from error
            raise LakeError(f"S3 refused the request ({status} {code}): {error}") from error
        except BotoCoreError as error:
            raise OSError(str(error)) from error

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


def s3_client(settings: Settings, *, connect_timeout: float = 5, read_timeout: float = 30) -> Any:
    """A boto3 client with no SDK retries: its caller owns the retry budget (the lake's
    conditional writes here; the stack's health checks and bucket set-up)."""
    import boto3
    from botocore.config import Config

    configure_s3_environment()
    config = Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout, retries={"max_attempts": 1}
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.secret("s3_access_key_id"),
        aws_secret_access_key=settings.secret("s3_secret_access_key"),
        region_name=settings.s3_region,
        config=config,
    )


def _versioned(logical: str, txid: str) -> str:
    path = PurePosixPath(logical)
    return str(path.with_name(f"{path.stem}.{txid}{path.suffix}"))


def _parse_manifest(manifest_key: str, data: bytes) -> Manifest:
    body = json.loads(data)
    return Manifest(manifest_key, body["txid"], body["objects"], body.get("metadata", {}))


def _owner() -> str:
    """Who writes: user@host, process id and command (`crm land`), for a waiting writer."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    command = " ".join([PurePosixPath(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else ""
    return f"{user}@{socket.gethostname()} pid {os.getpid()}" + (f" ({command})" if command else "")


def _abandoned(holder: Mapping[str, Any]) -> bool:
    """A lease nobody will release: expired, unreadable, or held by a process that is gone."""
    try:
        expires = datetime.fromisoformat(str(holder["expires_at"]))
    except (KeyError, ValueError):
        return True
    if expires <= datetime.now(UTC):
        return True
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if pid == os.getpid():
        return holder.get("token") not in _HELD_TOKENS  # a block of this process that is over
    return isinstance(pid, int) and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _subject(name: str) -> str:
    """`raw/snapshot=2017-12-31` -> `snapshot 2017-12-31 of raw/`; `features` -> `features/`;
    `runs/pipeline` -> `this lake (one pipeline run at a time)`."""
    if name.startswith(RUNS_PREFIX):
        return f"this lake (one {name.removeprefix(RUNS_PREFIX)} run at a time)"
    stage, _, rest = name.partition("/snapshot=")
    return f"snapshot {rest} of {stage}/" if rest else f"{name}/"


def _held_message(name: str, holder: Mapping[str, Any]) -> str:
    since = str(holder.get("acquired_at", "?"))
    try:
        since_at = datetime.fromisoformat(since)
        since = since_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        expires = datetime.fromisoformat(str(holder["expires_at"]))
        left = max(1, round((expires - datetime.now(UTC)).total_seconds()))
    except (KeyError, ValueError):
        left = round(LEASE_TTL_S)
    return (
        f"{_subject(name)} is being written by {holder.get('owner', 'another writer')} since "
        f"{since}; retry after it finishes or in {left} s (when its lease expires)."
    )
