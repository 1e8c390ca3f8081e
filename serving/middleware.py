"""The ASGI guard around the whole scorer: request ids, admission, body limit, JSON errors.

BentoML adds it in front of every route, its own (/readyz, /livez, /metrics, /docs) and the
mounted FastAPI app's, so that for any request:

- the response carries `X-Request-ID` (the caller's, if it sent a sane one; else a new one), and
  the log names the same id;
- a body larger than `max_body_bytes` is refused with 413 before it is read;
- at most `queue_limit` scoring requests are admitted at once; beyond, 429 with `Retry-After`,
  answered before anything else is done (no body read, no validation);
- a scoring request whose caller disconnects is cancelled (its job is dropped unscored);
- every error is JSON `{"error", "detail"?, "request_id"}`: a plain-text error from a framework
  route (404, 405, /readyz's 503) is rewritten, and an exception that escaped every handler
  becomes a 500 JSON answer (logged with its traceback) instead of a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from infra.settings import Settings

log = logging.getLogger("bentoml.crm_serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
SCORING_PATHS = frozenset({"/score", "/score_batch", "/score_features"})
INTERNAL_ERROR = (
    "Internal error: this request could not be scored. Other requests are not affected; the "
    "service log has the details under this request id."
)
CALLER_GONE = 499  # nginx's "client closed request": never seen by anyone, counted in metrics
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id() -> str | None:
    """The id of the request being handled (None outside a request)."""
    return REQUEST_ID.get()


def error_body(message: str, detail: Any = None) -> bytes:
    """The JSON of every error: message, optional detail, and the request's id."""
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    body["request_id"] = REQUEST_ID.get()
    return orjson.dumps(body)


@dataclass(frozen=True)
class Limits:
    queue_limit: int = 64  # scoring requests admitted at once (queued + running)
    max_body_bytes: int = 262_144
    retry_after_s: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits of `CRM_SERVING_QUEUE_LIMIT` and `CRM_SERVING_MAX_BODY_BYTES`."""
        return cls(
            queue_limit=settings.serving_queue_limit,
            max_body_bytes=settings.serving_max_body_bytes,
        )


class RequestGuard:
    """Pure ASGI middleware (no per-request task unless the caller must be watched)."""

    def __init__(self, app: App, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.in_flight = 0  # admitted scoring requests (event loop only: no lock needed)
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or os.urandom(8).hex()
        token = REQUEST_ID.set(rid)
        try:
            await self._handle(scope, receive, send, rid)
        finally:
            REQUEST_ID.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        reply = _Reply(send, rid)
        length = _content_length(scope)
        if length is not None and length > self.limits.max_body_bytes:
            await reply.error(413, self._too_large())
            return
        scoring = scope["path"] in SCORING_PATHS
        if scoring and self.in_flight >= self.limits.queue_limit:
            self.rejected += 1
            message = (
                f"Too many requests in flight ({self.limits.queue_limit}): retry after "
                f"{self.limits.retry_after_s} s."
            )
            await reply.error(429, message, [(b"retry-after", b"%d" % self.limits.retry_after_s)])
            return
        watcher: asyncio.Task[None] | None = None
        received = 0

        async def receive_guarded() -> Message:
            nonlocal received, watcher
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limits.max_body_bytes:  # a body without Content-Length
                    # HTTPException: FastAPI passes it through (any other error becomes a 400)
                    raise HTTPException(413, self._too_large())
                if scoring and not message.get("more_body", False):
                    # The app will not read again: from now on, watch for a hang-up.
                    watcher = _watch_caller(receive, asyncio.current_task(), reply)
            return message

        if scoring:
            self.in_flight += 1
        try:
            await self.app(scope, receive_guarded, reply.send)
        except asyncio.CancelledError:
            if not reply.caller_gone:
                raise  # a real cancellation (shutdown, BentoML's timeout): not ours to swallow
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await reply.error(CALLER_GONE, "The caller closed the connection.")
        except HTTPException as exc:
            await reply.error(exc.status_code, str(exc.detail))
        except Exception as exc:
            if _is_client_disconnect(exc):
                await reply.error(CALLER_GONE, "The caller closed the connection.")
                return
            log.error(
                "Request %s %s failed (request id %s)",
                scope.get("method"),
                scope.get("path"),
                rid,
                exc_info=exc,
            )
            await reply.error(500, INTERNAL_ERROR)
        finally:
            if scoring:
                self.in_flight -= 1
            if watcher is not None and not watcher.done():
                watcher.cancel()

    def _too_large(self) -> str:
        return (
            f"Request body larger than {self.limits.max_body_bytes} bytes: send fewer ids or "
            "features per request (see CRM_SERVING_MAX_BODY_BYTES)."
        )


def _watch_caller(
    receive: Receive, task: asyncio.Task[Any] | None, reply: _Reply
) -> asyncio.Task[None]:
    """Cancel `task` if the caller hangs up before the answer is complete."""

    async def watch() -> None:
        with contextlib.suppress(Exception):
            message = await receive()
            if message["type"] == "http.disconnect" and not reply.complete and task is not None:
                reply.caller_gone = True
                task.cancel()

    return asyncio.get_running_loop().create_task(watch())


class _Reply:
    """The response side of one request: adds the request id, turns text errors into JSON."""

    def __init__(self, send: Send, rid: str) -> None:
        self._send = send
        self._rid = rid.encode("latin-1")
        self.started = False
        self.complete = False
        self.caller_gone = False
        self._held: Message | None = None  # a non-JSON error's start, until its body is read
        self._held_body = b""

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            status = int(message["status"])
            if status >= 400 and not _is_json(message.get("headers") or ()):
                self._held = message
                return
            message = {**message, "headers": [*message.get("headers", ()), self._id_header()]}
        elif kind == "http.response.body":
            if self._held is not None:
                self._held_body += message.get("body", b"")
                if message.get("more_body", False):
                    return
                await self._send_json_error()
                return
            if not message.get("more_body", False):
                self.complete = True
        await self._send(message)

    async def error(
        self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Answer `status` with the JSON error body, unless something was already sent."""
        if self.started:
            return
        await self._start_and_finish(status, error_body(message), headers or [])

    async def _send_json_error(self) -> None:
        held = self._held
        assert held is not None
        status = int(held["status"])
        text = self._held_body.decode("utf-8", "replace").strip()
        if status >= 500 and status != 503:
            text = INTERNAL_ERROR  # a framework's 500 text says nothing useful to a caller
        elif not text:
            text = _phrase(status)
        kept = [
            (name, value)
            for name, value in held.get("headers", ())
            if name.lower() not in (b"content-type", b"content-length", REQUEST_ID_HEADER.encode())
        ]
        self._held = None
        await self._start_and_finish(status, error_body(text), kept)

    async def _start_and_finish(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.started = True
        start_headers = [
            *headers,
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            self._id_header(),
        ]
        await self._send(
            {"type": "http.response.start", "status": status, "headers": start_headers}
        )
        self.complete = True
        await self._send({"type": "http.response.body", "body": body})

    def _id_header(self) -> tuple[bytes, bytes]:
        return (REQUEST_ID_HEADER.encode(), self._rid)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.fullmatch(text) else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(headers: Any) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return bool(value.startswith(b"application/json") or value.endswith(b"+json"))
    return False


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _is_client_disconnect(exc: BaseException) -> bool:
    from starlette.requests import ClientDisconnect

    return isinstance(exc, ClientDisconnect)
