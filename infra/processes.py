"""Child processes and their ports: waiting until something is ready, and clean shutdown.

Every polling loop of the project goes through `wait_until` (tenacity runs it), so a caller only
says what it waits for and for how long. Process state comes from psutil: a zombie (exited, not
yet reaped) still has a PID but is not running, and a server's workers share its process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from infra.errors import CRMError

T = TypeVar("T")

# After SIGKILL a process is gone within milliseconds unless the kernel holds it (D state).
KILL_WAIT_S = 10.0


class WaitTimeout(CRMError):
    """What was waited for did not happen in time; callers add where to look (a log)."""


def wait_until(
    check: Callable[[], T], *, timeout_s: float, interval_s: float = 0.25, what: str
) -> T:
    """Call `check` every `interval_s` until it returns something truthy, and return that.

    `check` runs at least once. An exception it raises ends the wait at once (a server that
    exited will not become ready, so its caller says so without waiting out the timeout); after
    `timeout_s` of falsy answers, `WaitTimeout` names `what` was awaited.
    """
    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda value: not value),
    )
    try:
        return retrying(check)
    except RetryError:
        raise WaitTimeout(f"Gave up waiting for {what} after {timeout_s:g} s.") from None


def start_group(
    command: list[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new process group, output appended to `log`.

    Its own group so that `stop_group` stops its workers too; stdin closed so it never waits on
    a terminal. `env` is the child's whole environment (default: this process's).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the file
        return subprocess.Popen(  # nosec B603  # argv lists of our own servers, no shell
            command,
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


class ProcessExited(CRMError):
    """A server process ended while we waited for it to answer."""


def wait_http(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.5,
) -> None:
    """Wait until `url` answers 2xx; `ProcessExited` at once if `process` ends first,
    `WaitTimeout` if it never answers."""

    def ready() -> bool:
        if http_ok(url):
            return True
        if process.poll() is not None:
            raise ProcessExited(f"{what} exited with code {process.returncode} during start-up")
        return False

    wait_until(ready, timeout_s=timeout_s, interval_s=interval_s, what=f"{what} at {url}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec B310  # our servers' http URLs
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def alive(pid: int) -> bool:
    """True while `pid` runs.

    A zombie is not alive; if it is this process's child it is reaped here, so a long-lived
    parent (`crm demo`, a test session) does not collect them.
    """
    try:
        process = psutil.Process(pid)
        if process.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another user's process: it exists and we cannot see more
    with suppress(psutil.Error):
        process.wait(timeout=0)  # reaps our own child; someone else's zombie is left alone
    return False


def group_alive(pgid: int) -> bool:
    """True while any process of the group `pgid` runs.

    Zombies do not count: a worker orphaned and never reaped (init in a container may not reap)
    keeps its PID but holds no port and no file.
    """
    for process in psutil.process_iter(["status"]):
        with suppress(OSError, psutil.Error):  # it exited while we looked
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
    return False


def stop_group(pgid: int, grace_s: float) -> bool:
    """SIGTERM the process group `pgid`, wait `grace_s` (SeaweedFS takes ~15 s), then SIGKILL;
    then the same for any descendant that left the group.

    The group, not the PID: servers fork workers (gunicorn, uvicorn, BentoML's runners) that a
    signal to the leader alone would orphan. Every process we start gets a session of its own,
    so its group is what it started — except workers that call setsid themselves (BentoML's),
    which are found as descendants before the group is signalled. Returns whether nothing of
    the group still runs; callers that need more (closed ports) check that themselves.
    """
    descendants: list[psutil.Process] = []
    with suppress(psutil.Error):
        descendants = psutil.Process(pgid).children(recursive=True)
    gone = _stop_signalled_group(pgid, grace_s)
    _stop_processes([p for p in descendants if _running(p)], grace_s)
    return gone


def _stop_signalled_group(pgid: int, grace_s: float) -> bool:
    if not _signal_group(pgid, signal.SIGTERM):
        return True
    if _wait_group_gone(pgid, grace_s, interval_s=0.25):
        return True
    if not _signal_group(pgid, signal.SIGKILL):
        return True
    return _wait_group_gone(pgid, KILL_WAIT_S, interval_s=0.1)


def _stop_processes(processes: list[psutil.Process], grace_s: float) -> None:
    """Terminate, wait `grace_s`, kill: for processes outside the group (their own sessions)."""
    for process in processes:
        with suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        with suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=KILL_WAIT_S)


def _running(process: psutil.Process) -> bool:
    with suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group (one atomic `killpg`: psutil signals only single processes)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, timeout_s: float, interval_s: float) -> bool:
    def gone() -> bool:
        return not alive(pgid) and not group_alive(pgid)  # alive() reaps the leader if ours

    try:
        wait_until(gone, timeout_s=timeout_s, interval_s=interval_s, what=f"group {pgid} to exit")
    except WaitTimeout:
        return False
    return True
