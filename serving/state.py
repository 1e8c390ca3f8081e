"""What a running service holds: the engine once loaded, why it is not (yet), the batcher.

Loading never blocks start-up and never gives up: a background thread retries until the champion
and the feature store load (the reason is logged and answered by /readyz), then checks every
`refresh_seconds` whether the champion alias moved and swaps the engine in without a restart.
"""

from __future__ import annotations

import gc
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.settings import Settings
from serving.batcher import MicroBatcher
from serving.errors import NotReady, ServingError
from serving.scorer import ScoringEngine, open_engine

log = logging.getLogger("bentoml.crm_serving")  # under bentoml: its handlers print it


@dataclass(frozen=True)
class ScoreJob:
    """One request: a single id (/score) or many (/score_batch)."""

    ids: list[str]
    as_of: datetime | None
    top_k: int


JobResult = list[dict[str, Any] | ServingError]


class ServingState:
    def __init__(
        self,
        settings: Settings,
        *,
        alias: str = "champion",
        token: str | None = None,
        retry_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
        inline: bool = True,
        opener: Callable[[Settings, str], ScoringEngine] = open_engine,
    ) -> None:
        self.settings = settings
        self.alias = alias
        self.token = token or None
        self.retry_seconds = retry_seconds
        self.refresh_seconds = refresh_seconds
        self._opener = opener
        self.engine: ScoringEngine | None = None
        self.reason = "loading the champion model and the feature store"
        self.batcher: MicroBatcher[ScoreJob, JobResult] = MicroBatcher(
            self._score_jobs,
            size=lambda job: len(job.ids),
            inline=inline,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ServingState:
        """The token and the loader's timing from `CRM_API_TOKEN`, `CRM_SERVING_*` (or `.env`)."""
        return cls(
            settings,
            token=settings.api_token.get_secret_value() if settings.api_token else None,
            retry_seconds=settings.serving_retry_seconds,
            refresh_seconds=settings.serving_refresh_seconds,
            inline=settings.serving_inline,
        )

    # --------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._load_loop, name="model-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.batcher.close()

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
        self.engine = engine

    @property
    def version(self) -> str | None:
        return self.engine.loaded.version if self.engine else None

    # --------------------------------------------------------------------------- requests
    def ready_engine(self) -> ScoringEngine:
        engine = self.engine
        if engine is None:
            raise NotReady(f"Not ready: {self.reason}")
        return engine

    def authorized(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented, self.token)

    def _score_jobs(self, jobs: list[ScoreJob]) -> list[JobResult | BaseException]:
        """One engine call for every id of every queued request."""
        engine = self.ready_engine()
        ids = [i for job in jobs for i in job.ids]
        as_ofs = [job.as_of for job in jobs for _ in job.ids]
        top_ks = [job.top_k for job in jobs for _ in job.ids]
        flat = engine.score_ids(ids, as_ofs, top_ks)
        out: list[JobResult | BaseException] = []
        start = 0
        for job in jobs:
            out.append(flat[start : start + len(job.ids)])
            start += len(job.ids)
        return out
