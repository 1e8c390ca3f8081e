"""Real server processes for tests: free ports, start in a process group, wait, stop."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.processes import ProcessExited, WaitTimeout, start_group, stop_group
from infra.processes import wait_http as infra_wait_http
from tests.support.cli import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for a 2xx from `url`; fail with the process's log if it dies or never answers."""
    try:
        infra_wait_http(url, process, timeout_s=timeout, what=str(process.args[0]), interval_s=1)
    except (ProcessExited, WaitTimeout) as exc:
        pytest.fail(f"{exc}:\n{log.read_text(errors='replace')[-4000:]}")


@contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, the whole group stopped at the end."""
    log.unlink(missing_ok=True)
    process = start_group(args, log, cwd=cwd, env=env)
    try:
        yield process
    finally:
        stop_group(process.pid, grace_s=20)


class Webhook:
    """A local endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
