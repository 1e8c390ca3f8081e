"""What a running service holds: the engine once loaded, why it is not (yet), the batcher.

Loading never blocks start-up and never gives up: a background thread retries until the champion
and the feature store load (the reason is logged; /readyz only says "not ready"), then checks
every `refresh_seconds` whether the champion alias moved and swaps the engine in without a
restart. A request that cannot be scored fails alone: a batch that breaks is scored again one
request at a time, so only the culprit gets the error.

A batch's Python steps run on the event loop; what blocks runs on a thread of its own, so the
loop keeps answering (/livez, and 429s in microseconds under overload):
- the reads of a networked store (PostgreSQL), on the store thread, each bounded by the store's
  deadline (`serving.online`): a stalled store is a quick 503;
- the model (XGBoost's probability and contributions, ~1 ms a row: most of a score's CPU), on the
  model thread. XGBoost releases the GIL there, so the loop runs alongside on the other core.
(Running the whole batch on a thread cost ~30% of throughput: the loop then waits for the GIL
at every socket call, since most of a batch's steps hold it.)

A batch holds at most `serving_batch_max_ids` ids, and a larger request (/score_batch) is scored
in slices of that size: between two slices the loop serves what came meanwhile, so no Python
step of a batch keeps a 429 waiting long.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from infra.settings import Settings
from serving.batcher import MicroBatcher
from serving.errors import NotReady, ServingError, StoreUnavailable
from serving.prediction_log import PredictionLog, ServedRequest
from serving.scorer import Collected, ScoringEngine, open_engine

log = logging.getLogger("bentoml.crm_serving")  # under bentoml: its handlers print it


@dataclass(frozen=True)
class ScoreJob:
    """One request: a single id (/score) or many (/score_batch)."""

    ids: list[str]
    as_of: datetime | None
    top_k: int
    request_id: str | None = None  # for the prediction log (the batch runs in another task)
    route: str = "/score"


JobResult = list[dict[str, Any] | ServingError]
V = TypeVar("V")

NOT_READY = (
    "Not ready: the champion model or the feature store is not loaded yet; the service keeps "
    "retrying and its log says why."
)


def _digest(token: str | bytes) -> bytes:
    """SHA-256 of the token's bytes, so that comparing takes the same time whatever the length.

    A header value reaches us decoded as latin-1 (Starlette's choice), so `latin-1` gives back
    the bytes the client sent; text that is not latin-1 (a configured token) is UTF-8.
    """
    if isinstance(token, bytes):
        return hashlib.sha256(token).digest()
    try:
        raw = token.encode("latin-1")
    except UnicodeEncodeError:
        raw = token.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).digest()


class ServingState:
    def __init__(
        self,
        settings: Settings,
        *,
        alias: str = "champion",
        token: str | None = None,
        retry_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
        opener: Callable[[Settings, str], ScoringEngine] = open_engine,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.settings = settings
        self.alias = alias
        self.token = token or None
        # The configured token as UTF-8 bytes, as a client sends it in its header.
        self._token_digest = (
            hashlib.sha256(self.token.encode("utf-8", "surrogatepass")).digest()
            if self.token
            else None
        )
        self.retry_seconds = retry_seconds
        self.refresh_seconds = refresh_seconds
        self._opener = opener
        self.prediction_log = prediction_log  # every score returned, to the lake (None: off)
        # The engine the log's column lists were taken from, and those lists.
        self._log_columns: tuple[ScoringEngine | None, frozenset[str], tuple[str, ...]] = (
            None,
            frozenset(),
            (),
        )
        self.engine: ScoringEngine | None = None
        self.reason = "loading the champion model and the feature store"
        self.max_ids = settings.serving_batch_max_ids
        self.batcher: MicroBatcher[ScoreJob, JobResult] = MicroBatcher(
            self._score_jobs, max_items=self.max_ids, size=lambda job: len(job.ids)
        )
        # One thread for the store's reads: its single connection is never shared.
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        # One for the model: batches run one at a time, and XGBoost gets one OpenMP thread.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._retired: list[ScoringEngine] = []  # replaced engines, closed at the next refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, on_log_drop: Callable[[str, int], None] | None = None
    ) -> ServingState:
        """The token, the loader's timing and the prediction log from `CRM_API_TOKEN`,
        `CRM_SERVING_*` (or `.env`); `on_log_drop(reason, rows)` counts the log's drops."""
        return cls(
            settings,
            token=settings.api_token.get_secret_value() if settings.api_token else None,
            retry_seconds=settings.serving_retry_seconds,
            refresh_seconds=settings.serving_refresh_seconds,
            prediction_log=PredictionLog.from_settings(settings, on_log_drop)
            if settings.serving_log_enabled
            else None,
        )

    # --------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._load_loop, name="model-loader", daemon=True)
        self._thread.start()
        if self.prediction_log is not None:
            self.prediction_log.start()

    def stop(self) -> None:
        """Shutdown: the prediction log writes what it holds, then the store is released."""
        self._stop.set()
        if self.prediction_log is not None:
            self.prediction_log.close()
            log.info("Prediction log closed: %s", self.prediction_log.counts())
        self._store_thread.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        for engine in [*self._retired, self.engine]:
            if engine is not None:
                engine.close()

    def _load_loop(self) -> None:
        while not self._stop.is_set():
            if self.engine is None:
                self._try_load()
                wait = self.retry_seconds if self.engine is None else self.refresh_seconds
            else:
                self._refresh()
                wait = self.refresh_seconds
            self._stop.wait(wait)

    def _try_load(self) -> None:
        try:
            self.engine = self._opener(self.settings, self.alias)
        except Exception as exc:  # any failure keeps the service up, not ready, and retrying
            # The detail (hosts, paths, driver messages) goes to the log only, never to clients.
            self.reason = (
                f"cannot load {self.settings.model_name}@{self.alias} or the "
                f"{self.settings.profile.value} feature store: {exc}"
            )
            log.warning("Not ready (retrying in %.0f s): %s", self.retry_seconds, self.reason)
        else:
            # Everything loaded so far lives as long as the process: keep it out of the
            # garbage collector's full scans (they otherwise show up as latency spikes).
            gc.collect()
            gc.freeze()
            self.reason = "ready"
            log.info(
                "Ready: %s v%s on the %s profile",
                self.engine.loaded.name,
                self.engine.loaded.version,
                self.settings.profile.value,
            )

    def _refresh(self) -> None:
        """Swap in a new champion when the alias moved; keep serving the old one on failure."""
        from training.registry import alias_version

        assert self.engine is not None
        while self._retired:  # replaced a refresh ago: no batch can still be reading with it
            self._store_thread.submit(self._retired.pop().close)
        try:
            version = alias_version(self.settings, self.alias)
            if version is None or version == self.engine.loaded.version:
                return
            started = time.perf_counter()
            engine = self._opener(self.settings, self.alias)
        except Exception as exc:
            log.warning("Champion refresh failed, still serving v%s: %s", self.version, exc)
            return
        log.info(
            "Champion moved: v%s -> v%s (loaded in %.1f s)",
            self.version,
            engine.loaded.version,
            time.perf_counter() - started,
        )
        self._retired.append(self.engine)
        self.engine = engine

    @property
    def version(self) -> str | None:
        return self.engine.loaded.version if self.engine else None

    # --------------------------------------------------------------------------- requests
    def ready_engine(self) -> ScoringEngine:
        engine = self.engine
        if engine is None:
            raise NotReady(NOT_READY)
        return engine

    def authorized(self, presented: str | bytes | None) -> bool:
        """Constant-time check of a presented bearer token, whatever bytes it holds."""
        if self._token_digest is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(_digest(presented), self._token_digest)

    async def read(self, read: Callable[[], V]) -> V:
        """Run a blocking store read on the store thread (bounded by the store's deadline)."""
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, read)

    async def compute(self, work: Callable[[], V]) -> V:
        """Run the model's native work on the model thread (it releases the GIL)."""
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, work)

    async def _score_jobs(self, jobs: list[ScoreJob]) -> Sequence[JobResult | BaseException]:
        """One engine call for every id of every queued request; if that call breaks, each
        request again alone, so a request that cannot be scored fails without the others."""
        engine = self.ready_engine()
        try:
            return await self._score_together(engine, jobs)
        except (StoreUnavailable, NotReady):
            raise  # the same answer for every request of the batch (503)
        except Exception:
            if len(jobs) == 1:
                raise
            log.warning("A batch of %d requests failed: scoring them one by one", len(jobs))
        return [await self._score_alone(engine, job) for job in jobs]

    async def _score_alone(self, engine: ScoringEngine, job: ScoreJob) -> JobResult | BaseException:
        try:
            return (await self._score_together(engine, [job]))[0]
        except Exception as exc:  # answered to this request only (500 with a request id)
            return exc

    async def _score_together(self, engine: ScoringEngine, jobs: list[ScoreJob]) -> list[JobResult]:
        ids = [i for job in jobs for i in job.ids]
        as_ofs = [job.as_of for job in jobs for _ in job.ids]
        top_ks = [job.top_k for job in jobs for _ in job.ids]
        collected: list[Collected | ServingError] = []
        flat: list[dict[str, Any] | ServingError] = []
        for start in range(0, len(ids), self.max_ids):  # one slice unless a request is larger
            end = start + self.max_ids
            flat += await engine.score_ids_async(
                ids[start:end],
                as_ofs[start:end],
                top_ks[start:end],
                self.read,
                cpu=self.compute,
                collected=collected if self.prediction_log is not None else None,
            )
        if self.prediction_log is not None:
            self._log_scores(self.prediction_log, engine, jobs, collected, flat)
        out: list[JobResult] = []
        start = 0
        for job in jobs:
            out.append(flat[start : start + len(job.ids)])
            start += len(job.ids)
        return out

    def _log_scores(
        self,
        prediction_log: PredictionLog,
        engine: ScoringEngine,
        jobs: list[ScoreJob],
        collected: list[Collected | ServingError],
        flat: list[dict[str, Any] | ServingError],
    ) -> None:
        """Hand the batch's scores to the prediction log: one buffer append per request, its
        rows built later by the log's writer thread (no I/O, no conversion on the loop)."""
        try:
            served_at = datetime.now(UTC)
            if self._log_columns[0] is not engine:  # once per model, not per batch
                spec = engine.spec
                self._log_columns = (engine, frozenset(spec.categorical), tuple(spec.columns))
            _, categorical, columns = self._log_columns
            requests: list[ServedRequest] = []
            start = 0
            for job in jobs:
                end = start + len(job.ids)
                requests.append(
                    ServedRequest.of(
                        job.request_id,
                        job.route,
                        served_at,
                        collected[start:end],
                        flat[start:end],
                        categorical,
                        columns,
                    )
                )
                start = end
            prediction_log.record(requests)
        except Exception:  # logging must never cost a caller its score
            log.exception("Prediction log: a batch of scores could not be recorded")
