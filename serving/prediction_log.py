"""The prediction log: every score the HTTP service returns, written to the lake as Parquet.

What is logged: each id scored by `/score` and `/score_batch` (one row per id), with the request
id, the route, when it was served (UTC), the scoring time (`as_of`), the model name and version,
the probability, the deal's join keys and engage date (what recomputing it offline needs, see
`serving.skew`), then one column per model feature, named exactly as in the training frame and in
`get_historical_features(..., full_feature_names=True)` (`<view>__<feature>`), then the event
timestamp of each feature view's row used (`<view>__event_timestamp`). `/score_features` (what-if)
is not logged: its values are invented by the caller for no real deal and at no real time, so
they would pollute drift and could not be recomputed for skew.

Where: `infra.layout.prediction_log_prefix(day)` (`logs/predictions/date=D/<batch>.parquet`), one
object per batch and day, each written atomically (`Lake.write_parquet`: one PUT on S3, a rename
on disk); a reader never sees a partial file.

How: `record` appends to a bounded in-memory buffer and returns (a lock held for an append, no
I/O, no conversion). The service hands over each request's inputs and answers as they are
(`ServedRequest`): even building a `Served` per id (~5 us) is left to the writer thread, off the
event loop. One background thread turns the rows into Arrow and writes them every
`serving_log_flush_s` seconds or as soon as `serving_log_max_rows` are waiting. Scoring never
waits for the lake: when the buffer holds `serving_log_buffer_rows` (the lake is down or slow),
new rows are dropped and counted, as are the rows of a write the lake refused after its retries
(`counts()`, the service's `/metrics` and the log say so). `close` (the service's shutdown hook)
writes what is buffered, so nothing is lost on a clean shutdown.

Why not Feast's feature logging: in Feast 0.67 a feature service's `logging_config` is only a
destination. Nothing in the Python SDK or its feature server produces logs (the Go server did);
`FeatureStore.write_logged_features` is a writer the caller feeds, with no buffering. Its DuckDB
path (`write_logged_features_ibis`) has DuckDB write `<path>/<uuid>-{i}.parquet` straight to the
final name (a crash leaves a partial file readers see, unlike our manifests' atomic writes), reads
S3 only through DuckDB's default secret (the scorer keeps its S3 access in-process), and its
partitioning is by Feast's column (`log_date=`), not the lake layout's `date=D`. Its schema,
`FeatureServiceLoggingSource.get_schema`, is the feature service's (features, per-feature
timestamp and status, request id, log time) with no model name, version or probability, and
`retrieve_feature_service_logs` reads back only that schema, dropping those columns. So the log
is written here, with Feast's own column names for the features.
"""

from __future__ import annotations

import functools
import logging
import operator
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa

from feature_repo.entities import DEAL_KEYS, OPPORTUNITY_ID
from infra.lake import Lake
from infra.layout import prediction_log_prefix
from infra.settings import Settings

log = logging.getLogger("bentoml.crm_serving")  # under bentoml: its handlers print it

# The fixed columns, in order; feature columns follow, then the views' event timestamps.
LOG_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("route", pa.string()),
        (OPPORTUNITY_ID, pa.string()),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("probability", pa.float64()),
        *((key, pa.string()) for key in DEAL_KEYS),
        ("engage_date", pa.timestamp("us", tz="UTC")),
    ]
)
LOG_COLUMNS: tuple[str, ...] = tuple(LOG_SCHEMA.names)
TIMESTAMP_SUFFIX = "__event_timestamp"  # `<view>__event_timestamp`: the view's row used
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
EPOCH, NAIVE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1)
MICROSECOND = timedelta(microseconds=1)
# `logs/predictions`: the folder whose `date=D` partitions `prediction_log_prefix` names.
LOG_ROOT = str(PurePosixPath(prediction_log_prefix("D")).parent)
DATE_PARTITION = "date"
# A write the lake refuses is tried this many times in all (the lake's own backoff) before its
# rows are dropped: a lake that is down must not keep the writer (and the buffer) stuck.
WRITE_ATTEMPTS = 2
CONVERT_ROWS = 100  # rows converted to Arrow between two hand-overs of the GIL


def timestamp_column(view: str) -> str:
    return f"{view}{TIMESTAMP_SUFFIX}"


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model feature columns of a log frame (neither fixed nor a view's timestamp)."""
    return [c for c in frame.columns if c not in LOG_COLUMNS and not c.endswith(TIMESTAMP_SUFFIX)]


def timestamp_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith(TIMESTAMP_SUFFIX)]


@dataclass(frozen=True)
class Served:
    """One scored id, as the service returned it, with its model inputs (converted later)."""

    request_id: str | None
    route: str
    served_at: datetime
    result: Mapping[str, Any]  # the answer: probability, model name and version, as_of
    values: tuple[Any, ...]  # the model's feature values, in the order of `names`
    names: tuple[str, ...]  # the model's features, in its order: the columns logged
    timestamps: Mapping[str, datetime | None]  # view -> event timestamp of the row used
    keys: Mapping[str, str | None]
    engage_date: datetime | None
    categorical: frozenset[str]  # which features the model reads as categories (logged as text)


@dataclass(frozen=True)
class ServedRequest:
    """One request's scores as the service returned them: `served_rows`' arguments, expanded
    into `Served` rows by the writer thread. Nothing here is changed after scoring."""

    request_id: str | None
    route: str
    served_at: datetime
    collected: Sequence[Any]  # `serving.scorer.Collected` (or the error) per id
    results: Sequence[Mapping[str, Any] | Exception]
    categorical: frozenset[str]
    features: tuple[str, ...]
    rows: int  # the ids that got a score: the rows it becomes

    @classmethod
    def of(
        cls,
        request_id: str | None,
        route: str,
        served_at: datetime,
        collected: Sequence[Any],
        results: Sequence[Mapping[str, Any] | Exception],
        categorical: frozenset[str],
        features: tuple[str, ...],
    ) -> ServedRequest:
        scored = sum(1 for r in results if not isinstance(r, Exception))
        return cls(request_id, route, served_at, collected, results, categorical, features, scored)

    def expand(self) -> list[Served]:
        return served_rows(
            self.request_id,
            self.route,
            self.served_at,
            self.collected,
            self.results,
            self.categorical,
            self.features,
        )


class PredictionLog:
    """A bounded buffer of served scores and the one thread that writes them to the lake."""

    def __init__(
        self,
        lake: Lake,
        *,
        flush_s: float = 5.0,
        max_rows: int = 5_000,
        buffer_rows: int = 100_000,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self.lake = lake
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.buffer_rows = buffer_rows
        self._on_drop = on_drop
        self._buffer: list[Served | ServedRequest] = []
        self._buffered = 0  # rows in the buffer (a `ServedRequest` holds several)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()  # one write at a time (the thread, or close)
        self.logged = 0  # rows written to the lake
        self.dropped_full = 0  # rows refused because the buffer was full
        self.dropped_write = 0  # rows of a write the lake refused
        self.files = 0
        self._last_warning = 0.0

    @classmethod
    def from_settings(
        cls, settings: Settings, on_drop: Callable[[str, int], None] | None = None
    ) -> PredictionLog:
        lake = Lake.from_settings(settings)
        lake.attempts = WRITE_ATTEMPTS
        return cls(
            lake,
            flush_s=settings.serving_log_flush_s,
            max_rows=settings.serving_log_max_rows,
            buffer_rows=settings.serving_log_buffer_rows,
            on_drop=on_drop,
        )

    # ------------------------------------------------------------------------- scoring side
    def record(self, rows: Sequence[Served | ServedRequest]) -> bool:
        """Buffer `rows` without waiting; False (and counted) if the buffer has no room."""
        count = sum(r.rows if isinstance(r, ServedRequest) else 1 for r in rows)
        if not count:
            return True
        with self._lock:
            room = self._buffered + count <= self.buffer_rows
            if room:
                self._buffer.extend(rows)
                self._buffered += count
                full = self._buffered >= self.max_rows
        if not room:
            self._dropped("buffer_full", count)
            return False
        if full:
            self._wake.set()
        return True

    @property
    def buffered(self) -> int:
        return self._buffered

    def counts(self) -> dict[str, int]:
        return {
            "logged": self.logged,
            "buffered": self.buffered,
            "dropped_buffer_full": self.dropped_full,
            "dropped_write_failed": self.dropped_write,
            "files": self.files,
        }

    # ------------------------------------------------------------------------- writer side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and write what is buffered (a clean shutdown loses nothing)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()

    def flush(self) -> int:
        """Write every buffered row now; the number written (0 if the lake refused them)."""
        with self._write_lock:
            with self._lock:
                items, self._buffer = self._buffer, []
                count, self._buffered = self._buffered, 0
            if not count:
                return 0
            try:
                rows = [
                    row
                    for item in items
                    for row in (item.expand() if isinstance(item, ServedRequest) else (item,))
                ]
                written = self._write(rows)
            except Exception as exc:  # the lake is down (LakeError) or a row would not convert
                self._dropped("write_failed", count, exc)
                return 0
            self.logged += written
            return written

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self._stop.is_set():
                return  # `close` writes the rest
            self.flush()

    def _write(self, rows: list[Served]) -> int:
        by_day: dict[date, list[Served]] = {}
        for row in rows:
            by_day.setdefault(row.served_at.astimezone(UTC).date(), []).append(row)
        for day, day_rows in by_day.items():
            table = self._convert(day_rows)
            first = day_rows[0].served_at.astimezone(UTC)
            batch = f"{first:%H%M%S%f}-{uuid.uuid4().hex[:8]}"  # sorts by time, never collides
            key = f"{prediction_log_prefix(day.isoformat())}/{batch}.parquet"
            self.lake.write_parquet(key, table)
            self.files += 1
        return len(rows)

    @staticmethod
    def _convert(rows: list[Served]) -> pa.Table:
        """`to_table` in slices, handing the GIL back between them: the scorer's event loop,
        in the same process, then waits for at most one slice (~2 ms), not the whole batch."""
        parts = []
        for start in range(0, len(rows), CONVERT_ROWS):
            parts.append(to_table(rows[start : start + CONVERT_ROWS]))
            time.sleep(0)
        return pa.concat_tables(parts, promote_options="permissive")

    def _dropped(self, reason: str, rows: int, exc: BaseException | None = None) -> None:
        if reason == "buffer_full":
            self.dropped_full += rows
        else:
            self.dropped_write += rows
        if self._on_drop is not None:
            self._on_drop(reason, rows)
        now = time.monotonic()
        if exc is not None or now - self._last_warning > 10:  # at most one warning per 10 s
            self._last_warning = now
            log.warning(
                "Prediction log: %d rows dropped (%s%s); %s",
                rows,
                reason,
                f": {exc}" if exc else "",
                self.counts(),
            )


def served_rows(
    request_id: str | None,
    route: str,
    served_at: datetime,
    collected: Iterable[Any],
    results: Iterable[Mapping[str, Any] | Exception],
    categorical: Iterable[str],
    features: Sequence[str],
) -> list[Served]:
    """One `Served` per id that got a score (errors are not scores), from `serving.scorer`'s
    `Collected` inputs and the answers; `features`: the model's columns, in its order."""
    # Callers on the event loop pass these ready-made (`ServingState` keeps them per model).
    categories = categorical if isinstance(categorical, frozenset) else frozenset(categorical)
    names = features if isinstance(features, tuple) else tuple(features)
    out = []
    for inputs, result in zip(collected, results, strict=True):
        if isinstance(result, Exception):
            continue
        out.append(
            Served(
                request_id,
                route,
                served_at,
                result,
                _values(inputs.features, names),
                names,
                inputs.timestamps,
                inputs.keys,
                inputs.engage_date,
                categories,
            )
        )
    return out


def to_table(rows: Sequence[Served]) -> pa.Table:
    """The log rows as one Arrow table: fixed columns, features, then timestamps."""
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([r.request_id for r in rows], pa.string()),
        "route": pa.array([r.route for r in rows], pa.string()),
        OPPORTUNITY_ID: pa.array([r.result.get(OPPORTUNITY_ID) for r in rows], pa.string()),
        "served_at": _timestamps([r.served_at for r in rows]),
        "as_of": _timestamps([r.result.get("as_of") for r in rows]),
        "model_name": pa.array([r.result.get("model_name") for r in rows], pa.string()),
        "model_version": pa.array([r.result.get("model_version") for r in rows], pa.string()),
        "probability": pa.array([r.result.get("win_probability") for r in rows], pa.float64()),
    }
    for key in DEAL_KEYS:
        columns[key] = pa.array([_text(r.keys.get(key)) for r in rows], pa.string())
    columns["engage_date"] = _timestamps([r.engage_date for r in rows])
    # Usually one model for the whole batch: its column lists are the same objects in each row,
    # and its values are transposed into columns in C (`zip(*rows)`).
    models = list({id(r.names): (r.names, r.categorical) for r in rows}.values())
    names = list(dict.fromkeys(name for model_names, _ in models for name in model_names))
    categorical = frozenset().union(*(categories for _, categories in models))
    if len(models) == 1:
        by_name = dict(zip(names, zip(*(r.values for r in rows), strict=True), strict=True))
    else:  # a champion swap within the batch: each row's own features, the others null
        rows_by_name = [dict(zip(r.names, r.values, strict=True)) for r in rows]
        by_name = {name: tuple(f.get(name) for f in rows_by_name) for name in names}
    for name in names:
        kind = pa.string() if name in categorical else pa.float64()
        columns[name] = _column(list(by_name.get(name, ())), kind)
    stamps = [r.timestamps for r in rows]
    for view in dict.fromkeys(view for t in stamps for view in t):
        columns[timestamp_column(view)] = _timestamps([t.get(view) for t in stamps])
    return pa.table(columns)


def read_prediction_log(
    lake: Lake, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Every logged score served on days `start`..`end` (inclusive; None: unbounded), sorted by
    `served_at`: the fixed `LOG_COLUMNS`, then the feature columns, then the views' timestamps.
    Batches written by different models may hold different features: missing ones are null."""
    days = [
        d
        for d in lake.list_partitions(LOG_ROOT, DATE_PARTITION)
        if (start is None or date.fromisoformat(d) >= start)
        and (end is None or date.fromisoformat(d) <= end)
    ]
    tables = [
        lake.read_parquet(info.key)
        for day in days
        for info in lake.list(prediction_log_prefix(day) + "/")
        if info.key.endswith(".parquet")
    ]
    if not tables:
        return LOG_SCHEMA.empty_table().to_pandas()
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    ordered = [*LOG_COLUMNS, *feature_columns(frame), *timestamp_columns(frame)]
    return frame[ordered].sort_values("served_at", kind="stable", ignore_index=True)


def _values(features: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    """The values of `names`, in order, copied in C (`itemgetter`): the row no longer needs the
    scorer's dict, and the writer transposes tuples instead of looking up names."""
    if len(names) > 1:
        try:
            return _getter(names)(features)  # type: ignore[no-any-return]
        except KeyError:
            pass
    return tuple(features.get(name) for name in names)


@functools.lru_cache(maxsize=8)
def _getter(names: tuple[str, ...]) -> operator.itemgetter[Any]:
    return operator.itemgetter(*names)


def _timestamps(values: list[datetime | None]) -> pa.Array:
    """Datetimes (naive ones are UTC) as a UTC microsecond column, through integers: Arrow's own
    conversion of Python datetimes asks each value for its offset (and looks the time zone up),
    ~10-70x slower here, and the writer thread holds the GIL the scorer's loop needs meanwhile."""
    micros = [
        None if v is None else (v - (NAIVE_EPOCH if v.tzinfo is None else EPOCH)) // MICROSECOND
        for v in values
    ]
    return pa.array(micros, pa.int64()).cast(TIMESTAMP_TYPE)


def _column(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Values as one Arrow column: Arrow converts the usual case (floats and ints; text) in C;
    anything else (a bool, a number as a category) goes value by value."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        convert = _text if kind == pa.string() else _number
        return pa.array([convert(v) for v in values], kind)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
