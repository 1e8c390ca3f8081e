"""The process helpers against real child processes (`sh`, `sleep`): waiting, stopping, reaping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from infra.errors import CRMError
from infra.processes import (
    ProcessExited,
    WaitTimeout,
    alive,
    group_alive,
    start_group,
    stop_group,
    wait_http,
    wait_until,
)
from tests.support.servers import free_port


@pytest.fixture
def group(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`sh` leading a session of its own with two `sleep` grandchildren; killed if a test fails."""
    command = ["sh", "-c", "echo started; sleep 60 & sleep 60 & wait"]
    process = start_group(command, tmp_path / "logs" / "group.log", cwd=tmp_path)
    yield process
    if group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def children(pid: int, count: int) -> list[psutil.Process]:
    """The `count` children of `pid`, once the shell has started them all."""

    def started() -> list[psutil.Process]:
        found = psutil.Process(pid).children()
        return found if len(found) == count else []

    return wait_until(started, timeout_s=5, interval_s=0.02, what=f"{count} children of {pid}")


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(answers), timeout_s=5, interval_s=0.01, what="x") == "ready"


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"waiting for the moon after 0.2 s") as raised:
        wait_until(never, timeout_s=0.2, interval_s=0.02, what="the moon")
    assert 0.2 <= time.monotonic() - started < 2
    assert calls > 2
    assert isinstance(raised.value, CRMError)


def test_an_error_in_the_check_ends_the_wait_at_once() -> None:
    def exited() -> bool:
        raise RuntimeError("the server exited")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited"):
        wait_until(exited, timeout_s=30, what="a server")
    assert time.monotonic() - started < 1


def test_stop_group_stops_the_leader_and_its_grandchildren(
    group: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    sleeps = children(group.pid, 2)
    assert os.getpgid(group.pid) == group.pid  # start_group made it a group leader
    assert (tmp_path / "logs" / "group.log").read_text() == "started\n"
    assert group_alive(group.pid)

    assert stop_group(group.pid, grace_s=5)

    assert not group_alive(group.pid)
    assert not alive(group.pid)
    assert not any(alive(s.pid) for s in sleeps)


def test_stop_group_kills_what_ignores_sigterm() -> None:
    # An ignored signal stays ignored across exec: neither sh nor sleep stops on SIGTERM.
    process = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"], start_new_session=True)
    children(process.pid, 1)
    started = time.monotonic()
    assert stop_group(process.pid, grace_s=0.3)
    assert time.monotonic() - started < 3
    assert not group_alive(process.pid)
    process.wait(timeout=1)  # alive() reaped it already: Popen copes


def test_stop_group_of_a_finished_group_is_a_no_op() -> None:
    process = subprocess.Popen(["true"], start_new_session=True)
    process.wait(timeout=5)
    assert stop_group(process.pid, grace_s=5)


def test_a_zombie_child_is_not_alive_and_gets_reaped() -> None:
    process = subprocess.Popen(["true"])
    wait_until(
        lambda: psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE,
        timeout_s=5,
        interval_s=0.01,
        what="`true` to exit",
    )
    assert not alive(process.pid)
    assert not psutil.pid_exists(process.pid)  # reaped, not just reported dead


def test_a_reaped_child_is_not_alive_and_a_running_one_is() -> None:
    process = subprocess.Popen(["true"])
    process.wait(timeout=5)
    assert not alive(process.pid)
    assert alive(os.getpid())


def test_wait_http_returns_once_the_server_answers(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = start_group(command, tmp_path / "http.log", cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/", server, timeout_s=20, what="http.server")
    finally:
        stop_group(server.pid, grace_s=5)


def test_wait_http_fails_at_once_when_the_server_exits(tmp_path: Path) -> None:
    server = start_group(["sh", "-c", "exit 3"], tmp_path / "exit.log", cwd=tmp_path)
    started = time.monotonic()
    with pytest.raises(ProcessExited, match="exited with code 3"):
        wait_http(f"http://127.0.0.1:{free_port()}/", server, timeout_s=20, what="the server")
    assert time.monotonic() - started < 5
