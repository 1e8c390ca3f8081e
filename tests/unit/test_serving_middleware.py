"""`RequestGuard`: request ids, JSON for every error, the body limit, 429 admission and dropped
callers (issue 12, 1 and 3), on a small ASGI app standing in for the scorer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from serving.middleware import INTERNAL_ERROR, Limits, RequestGuard


async def score(request: Request) -> Response:
    await request.body()
    release: asyncio.Event | None = request.app.state.release
    if release is not None:
        await release.wait()
    return JSONResponse({"ok": True})


async def boom(_: Request) -> Response:
    raise RuntimeError("secret internal detail")


async def text_error(_: Request) -> Response:
    return PlainTextResponse("not ready", status_code=503)


async def livez(_: Request) -> Response:
    return PlainTextResponse("\n")


def guarded(release: asyncio.Event | None = None, **limits: Any) -> RequestGuard:
    app = Starlette(
        routes=[
            Route("/score", score, methods=["POST"]),
            Route("/score_features", boom, methods=["POST"]),
            Route("/readyz", text_error),
            Route("/livez", livez),
        ]
    )
    app.state.release = release  # /score waits for it (None: answers at once)
    return RequestGuard(app, Limits(**limits))


def client(app: RequestGuard) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_every_response_has_a_request_id_the_callers_own_when_sane() -> None:
    async def main() -> list[httpx.Response]:
        async with client(guarded()) as c:
            return [
                await c.get("/livez"),
                await c.get("/livez", headers={"X-Request-ID": "trace-42.a:b"}),
                await c.get("/livez", headers={"X-Request-ID": "bad id\n" + "x" * 80}),
            ]

    fresh, echoed, replaced = asyncio.run(main())
    assert len(fresh.headers["x-request-id"]) == 16
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    assert (
        replaced.headers["x-request-id"] != "bad id" and len(replaced.headers["x-request-id"]) == 16
    )


def test_text_errors_become_json_with_the_request_id() -> None:
    async def main() -> list[httpx.Response]:
        async with client(guarded()) as c:
            return [await c.get("/readyz"), await c.get("/nowhere"), await c.delete("/livez")]

    for response, status, message in zip(
        asyncio.run(main()),
        (503, 404, 405),
        ("not ready", "Not Found", "Method Not Allowed"),
        strict=True,
    ):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": message, "request_id": response.headers["x-request-id"]}
    assert asyncio.run(main())[2].headers["allow"]  # the original headers are kept


def test_an_unexpected_exception_is_a_json_500_and_the_detail_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with client(guarded()) as c:
            return await c.post("/score_features", json={}), await c.get("/livez")

    with caplog.at_level(logging.ERROR, logger="bentoml.crm_serving"):
        failed, after = asyncio.run(main())
    assert failed.status_code == 500
    assert failed.json() == {"error": INTERNAL_ERROR, "request_id": failed.headers["x-request-id"]}
    assert "secret" not in failed.text
    assert failed.headers["x-request-id"] in caplog.text and "secret internal detail" in caplog.text
    assert after.status_code == 200


def test_bodies_over_the_limit_are_413_by_length_or_while_streaming() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 100

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(guarded(max_body_bytes=500)) as c:
            return (
                await c.post("/score", content=b"x" * 501),
                await c.post("/score", content=chunks()),  # no Content-Length
                await c.post("/score", content=b"{}"),
            )

    declared, streamed, small = asyncio.run(main())
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "larger than 500 bytes" in response.json()["error"]
    assert small.status_code == 200


def test_beyond_the_queue_limit_scoring_gets_429_with_retry_after_and_probes_still_answer() -> None:
    async def main() -> tuple[list[httpx.Response], httpx.Response, httpx.Response, int]:
        release = asyncio.Event()
        guard = guarded(release, queue_limit=2)
        async with client(guard) as c:
            admitted = [asyncio.ensure_future(c.post("/score", json={})) for _ in range(2)]
            while guard.in_flight < 2:
                await asyncio.sleep(0.001)
            rejected = await c.post("/score", json={})
            probe = await c.get("/livez")
            release.set()
            return list(await asyncio.gather(*admitted)), rejected, probe, guard.in_flight

    admitted, rejected, probe, in_flight = asyncio.run(main())
    assert [r.status_code for r in admitted] == [200, 200]
    assert rejected.status_code == 429 and rejected.headers["retry-after"] == "1"
    assert "retry after 1 s" in rejected.json()["error"]
    assert probe.status_code == 200
    assert in_flight == 0


def test_a_caller_that_hangs_up_cancels_its_request_and_frees_its_slot() -> None:
    """uvicorn answers `receive()` with http.disconnect when the client goes: the scoring
    request still waiting is cancelled (its batch job is then dropped unscored)."""
    cancelled = asyncio.Event()

    async def waits_forever(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the body
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> tuple[list[dict[str, Any]], int]:
        guard = RequestGuard(waits_forever, Limits())
        hang_up = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if not hasattr(receive, "done"):
                receive.done = True  # type: ignore[attr-defined]
                return {"type": "http.request", "body": b"{}", "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/score", "method": "POST", "headers": []}
        task = asyncio.ensure_future(guard(scope, receive, send))
        await asyncio.sleep(0.01)
        assert guard.in_flight == 1
        hang_up.set()
        await asyncio.wait_for(task, 2)
        return sent, guard.in_flight

    sent, in_flight = asyncio.run(main())
    assert cancelled.is_set()
    assert sent[0]["status"] == 499  # nobody reads it; metrics count it
    assert in_flight == 0
