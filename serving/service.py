"""The BentoML scoring service: `bentoml serve serving.service:Scorer` (`make serve`).

Scoring routes are a FastAPI app mounted on the BentoML service (BentoML's documented way to own
status codes and bodies): 404/422/503 answers carry a message that says what to do, which
BentoML's own API wrapper would replace by a generic text for 5xx. BentoML still provides
/healthz, /livez, /readyz (503 "not ready" until the champion and the feature store are loaded;
the reason is in the log only), /metrics and the OpenAPI docs at /docs.

`serving.middleware.RequestGuard` wraps every route: request ids, the body limit, admission
control (429), and JSON for every error.

Settings (`infra/settings.py`, from the environment or `.env`): the profile's `CRM_*` values,
`CRM_API_TOKEN` (bearer token on the scoring routes), `CRM_SERVING_ACCESS_LOG` (off: it costs
~40% of throughput), `CRM_SERVING_RETRY_SECONDS`, `CRM_SERVING_REFRESH_SECONDS`,
`CRM_SERVING_QUEUE_LIMIT`, `CRM_SERVING_BATCH_MAX_IDS`, `CRM_SERVING_MAX_BODY_BYTES`,
`CRM_SERVING_STORE_CONNECT_TIMEOUT`, `CRM_SERVING_STORE_TIMEOUT`, `CRM_SERVING_LOG_*` (the
prediction log, `serving.prediction_log`; its drops are counted on /metrics as
`crm_prediction_log_dropped_rows_total`); MLflow and libpq timeouts come with the profile's
environment (`CRM_MLFLOW_REQUEST_TIMEOUT_S`, `CRM_PG_CONNECT_TIMEOUT_S`).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
import orjson
import psutil
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.responses import Response

from infra.settings import Settings, get_settings
from serving.errors import ServingError
from serving.middleware import INTERNAL_ERROR, Limits, RequestGuard, error_body, request_id
from serving.schemas import (
    BatchScoreRequest,
    BatchScoreResponse,
    ErrorBody,
    FeaturesRequest,
    ModelFeatures,
    Score,
    ScoreRequest,
)
from serving.state import ScoreJob, ServingState

log = logging.getLogger("bentoml.crm_serving")  # under bentoml: its handlers print it

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorBody, "description": "Unknown or already closed opportunity."},
    413: {"model": ErrorBody, "description": "Body larger than CRM_SERVING_MAX_BODY_BYTES."},
    422: {"model": ErrorBody, "description": "Invalid body; the message names the field."},
    429: {
        "model": ErrorBody,
        "description": "Too many requests in flight; retry after `Retry-After` seconds.",
    },
    503: {"model": ErrorBody, "description": "Not ready, or the online store is unreachable."},
}

app = FastAPI(
    title="CRM win probability",
    description="Scores open B2B opportunities with the champion model on Feast online features.",
    version="1",
)
bearer = HTTPBearer(auto_error=False, description="Only when CRM_API_TOKEN is set.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


class _Holder:
    """The one ServingState of this worker process, set by `Scorer.__init__`."""

    state: ServingState | None = None


def _state() -> ServingState:
    if _Holder.state is None:
        raise ServingError("The service is starting.")
    return _Holder.state


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, message: str, detail: Any = None, **headers: str) -> Response:
    response = Response(error_body(message, detail), status, media_type="application/json")
    response.headers.update(headers)
    return response


def _authorize(credentials: HTTPAuthorizationCredentials | None) -> None:
    presented = credentials.credentials if credentials else None
    if not _state().authorized(presented):
        raise HTTPException(401, "Missing or wrong bearer token: send Authorization: Bearer …")


@app.exception_handler(ServingError)
async def _serving_error(_: Request, exc: ServingError) -> Response:
    return _error(exc.status, str(exc), getattr(exc, "fields", None) or None)


@app.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    return _error(exc.status_code, str(exc.detail), **headers)


MAX_PROBLEMS = 20  # a 422 lists this many fields, then counts the rest


@app.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    problems = []
    for e in errors[:MAX_PROBLEMS]:
        location = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        problems.append({"field": location[:200], "message": e["msg"]})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    if len(errors) > MAX_PROBLEMS:
        summary += f" (and {len(errors) - MAX_PROBLEMS} more)"
    return _error(422, f"Invalid request: {summary}", problems)


@app.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> Response:
    """Last resort (Starlette then re-raises it: `RequestGuard` logs it with the request id)."""
    return _error(500, INTERNAL_ERROR)


@app.post("/score", response_model=Score, responses=ERRORS)
async def score(body: ScoreRequest, credentials: Credentials = None) -> Response:
    """Win probability of one open opportunity from its online features."""
    _authorize(credentials)
    state = _state()
    state.ready_engine()
    job = ScoreJob([body.opportunity_id], body.as_of, body.top_k, request_id(), "/score")
    result = (await state.batcher.submit(job))[0]
    if isinstance(result, ServingError):
        raise result
    return _json(result)


@app.post("/score_batch", response_model=BatchScoreResponse, responses=ERRORS)
async def score_batch(body: BatchScoreRequest, credentials: Credentials = None) -> Response:
    """Up to 1,000 open opportunities with one online read; 404 names every unscorable id."""
    _authorize(credentials)
    state = _state()
    state.ready_engine()
    job = ScoreJob(body.opportunity_ids, body.as_of, body.top_k, request_id(), "/score_batch")
    results = await state.batcher.submit(job)
    failed = [
        (i, r)
        for i, r in zip(body.opportunity_ids, results, strict=True)
        if isinstance(r, ServingError)
    ]
    if failed:
        status = max(r.status for _, r in failed)
        shown = "; ".join(str(r) for _, r in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        return _error(
            status,
            f"{len(failed)} of {len(results)} ids cannot be scored: {shown}{more}",
            [{"opportunity_id": i, "error": str(r)} for i, r in failed],
        )
    return _json({"scores": results})


@app.post("/score_features", response_model=Score, responses=ERRORS)
async def score_features(body: FeaturesRequest, credentials: Credentials = None) -> Response:
    """What-if scoring from explicit feature values (no feature store read; not logged: the
    values are the caller's invention, for no real deal at no real time)."""
    _authorize(credentials)
    state = _state()
    engine = state.ready_engine()
    # No store read: a few hundred microseconds of CPU, on the loop like the batches.
    return _json(engine.score_features(body.features, body.list_price, body.top_k))


@app.get("/model_features", response_model=ModelFeatures, responses=ERRORS)
async def model_features(credentials: Credentials = None) -> Response:
    """The champion's feature names, numeric or categorical with levels (for /score_features)."""
    _authorize(credentials)
    return _json(_state().ready_engine().describe())


def _started_in() -> Path | None:
    """The directory `bentoml serve` was started in, seen from one of its workers (BentoML runs
    them in the working dir, `--working-dir`, instead)."""
    with suppress(psutil.Error, OSError):
        me = psutil.Process()
        if any("_bentoml_impl.worker" in part for part in me.cmdline()):
            parent = me.parent()
            return Path(parent.cwd()) if parent is not None else None
    return None


def scorer_settings() -> Settings:
    """The settings, with the `.env` of the directory `bentoml serve` was started in (a user's
    `.env` there, CRM_API_TOKEN say, must not be ignored because the worker runs elsewhere)."""
    started = _started_in()
    if started is None or started == Path.cwd():
        return get_settings()
    env_files = (Path.cwd() / ".env", started / ".env")  # the latter wins
    return Settings(**cast(dict[str, Any], {"_env_file": env_files}))  # pydantic-settings' init arg


def _log_drop_counter() -> Callable[[str, int], None]:
    """`on_drop` for the prediction log: a counter of dropped rows on BentoML's /metrics.

    Made in the worker, not at import: BentoML sets PROMETHEUS_MULTIPROC_DIR after importing
    this module, and a metric made before that never reaches /metrics. `bentoml.metrics` (a
    deprecated alias of prometheus_client, which is not a direct dependency here) defers its
    import for exactly that reason.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        counter = bentoml.metrics.Counter(
            name="crm_prediction_log_dropped_rows",
            documentation="Served scores the prediction log dropped, by reason (buffer_full, "
            "write_failed): the lake was down or too slow.",
            labelnames=["reason"],
        )
    return lambda reason, rows: counter.labels(reason=reason).inc(rows)


# Read when BentoML imports this module, before any request: the settings needed then.
_SETTINGS = scorer_settings()
# How long a thread holding the GIL in Python code (the prediction log's Arrow conversion, the
# store thread's row decoding) may keep the event loop waiting for it: 1 ms instead of CPython's
# 5 ms, so a 429 or a probe is not held behind a background thread. (Paired overload runs at
# load ~7.6 on 2 cores: the probe's 429 p50 18 vs 26 ms, p95 164 vs 290 ms, 200s/s 144 vs 135.)
GIL_SWITCH_INTERVAL_S = 0.001


@bentoml.service(
    name="crm_win_probability",
    workers=1,
    traffic={"timeout": 60},
    logging={"access": {"enabled": _SETTINGS.serving_access_log}},
)
@bentoml.asgi_app(app, path="/")
class Scorer:
    """Loads the champion and the profile's Feast store in the background at start-up."""

    def __init__(self) -> None:
        from infra.runtime import prepare_process

        settings = scorer_settings()
        prepare_process(settings)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # this worker process only
        state = ServingState.from_settings(settings, on_log_drop=_log_drop_counter())
        _Holder.state = state
        state.start()
        log.info(
            "Starting on the %s profile; loading %s@%s",
            settings.profile.value,
            settings.model_name,
            state.alias,
        )

    async def __is_ready__(self) -> bool:
        """Public answer "not ready" only: why (hosts, driver errors) is in the log."""
        state = _state()
        if state.engine is None:
            raise HTTPException(503, "not ready")
        return True

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        """BentoML's shutdown hook (a clean stop, SIGTERM included): the prediction log writes
        what it holds, then the store connection is closed."""
        if _Holder.state is not None:
            _Holder.state.stop()


# `bentoml.service` returns a Service (its stubs say the class): the guard wraps every route.
cast(Any, Scorer).add_asgi_middleware(RequestGuard, limits=Limits.from_settings(_SETTINGS))
