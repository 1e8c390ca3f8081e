"""Real server processes for tests: free ports, start in a process group, wait, stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from infra.processes import WaitTimeout, start_group, stop_group, wait_until
from tests.support.cli import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for a 200 from `url`; fail with the process's log if it dies or never answers."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args} exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout_s=timeout, interval_s=1, what=f"{url} to answer 200")
    except WaitTimeout:
        pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


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
