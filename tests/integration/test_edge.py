"""The edge (serving/edge.py): a real nginx in front of a slow upstream of known behaviour.

The upstream is a small threaded HTTP server that holds each /score for a while and echoes the
X-Request-ID it received, so that the edge's own decisions (admit or 429, 413, 503 when the
scorer is gone) can be told apart from the scorer's. The scorer behind the edge under 256
clients is the reliability bench's `overload` scenario.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench.reliability.tcp_proxy import free_port
from infra.settings import Settings
from serving.edge import TEMPLATE, EdgeProcess, render, start_edge
from serving.errors import EdgeError
from serving.middleware import SCORING_PATHS, Limits

HOLD_S = 0.6  # how long the upstream holds a /score: long enough for the others to pile up


class _SlowScorer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  # http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(HOLD_S)
        body = json.dumps({"seen_request_id": self.headers.get("X-Request-ID")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SlowScorer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def edge(upstream: ThreadingHTTPServer, tmp_path: Path) -> Iterator[EdgeProcess]:
    settings = Settings(  # type: ignore[call-arg]  # pydantic-settings' init args
        _env_file=None, serving_queue_limit=2, serving_max_body_bytes=1_000
    )
    host, port = upstream.server_address[:2]
    with start_edge(
        settings, upstream=f"{host!s}:{port}", port=free_port(), state_dir=tmp_path / "edge"
    ) as running:
        yield running


def test_the_template_names_the_scorers_scoring_paths() -> None:
    (alternatives,) = re.findall(r"location ~ \^/\(([a-z_|]+)\)\$", TEMPLATE.read_text())
    assert {f"/{name}" for name in alternatives.split("|")} == SCORING_PATHS


def test_every_placeholder_is_filled() -> None:
    text = render(Limits(queue_limit=7), upstream="127.0.0.1:1", listen="127.0.0.1:2")
    assert "${" not in text
    assert "limit_conn crm_scoring 7;" in text


def test_beyond_the_limit_the_edge_answers_429_json_at_once(edge: EdgeProcess) -> None:
    def post(n: int) -> httpx.Response:
        return httpx.post(f"{edge.url}/score", json={"n": n}, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200] + [429] * 6, statuses
    for answer in answers:
        if answer.status_code == 429:
            assert answer.headers["Retry-After"] == "1"
            body = answer.json()
            assert body["error"].startswith("Too many requests in flight (2)")
            assert body["request_id"] == answer.headers["X-Request-ID"]
            assert answer.elapsed.total_seconds() < HOLD_S / 2  # not queued behind the upstream


def test_the_callers_request_id_reaches_the_scorer(edge: EdgeProcess) -> None:
    answer = httpx.post(
        f"{edge.url}/score", json={}, headers={"X-Request-ID": "abc-123"}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.json() == {"seen_request_id": "abc-123"}
    insane = httpx.post(f"{edge.url}/score", json={}, headers={"X-Request-ID": "a b"}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", insane.json()["seen_request_id"])


def test_an_oversized_body_is_refused_with_413_json(edge: EdgeProcess) -> None:
    answer = httpx.post(f"{edge.url}/score", content=b"x" * 5_000, timeout=10)
    assert answer.status_code == 413
    assert "larger than 1000 bytes" in answer.json()["error"]


def test_a_scorer_that_is_gone_gives_503_json(
    edge: EdgeProcess, upstream: ThreadingHTTPServer
) -> None:
    upstream.shutdown()
    upstream.server_close()
    answer = httpx.post(f"{edge.url}/score", json={}, timeout=10)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert "not answering" in answer.json()["error"]


def test_a_taken_port_is_one_clear_error(upstream: ThreadingHTTPServer, tmp_path: Path) -> None:
    taken = int(upstream.server_address[1])
    with (
        pytest.raises(EdgeError, match=f"Port {taken} is taken"),
        start_edge(
            Settings(_env_file=None),  # type: ignore[call-arg]
            upstream="127.0.0.1:1",
            port=taken,
            state_dir=tmp_path,
        ),
    ):
        pass
