"""`crm demo`: the pipeline, then the scorer and the explorer, until Ctrl-C.

The pipeline runs in this process (Prefect flows); the scorer (`bentoml serve`) and the explorer
(`streamlit run`) are child processes in their own process groups, stopped on exit whatever
happens, so a demo never leaves a server behind:

- once stopping has begun, more SIGINT/SIGTERM do not interrupt it. A supervisor's SIGTERM to
  `make demo` reaches this process two or three times (from `timeout`'s process group, from
  make, from `uv run`); a second KeyboardInterrupt used to abort the clean-up after the explorer
  and leave the scorer running;
- a server's whole process tree is stopped, not only its group: BentoML's worker runs in a
  session of its own (circus calls setsid), so signalling the group missed it whenever the
  arbiter did not stop it (SIGKILLed after the grace period, or signalled while starting).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.errors import CRMError
from infra.processes import (
    ProcessExited,
    WaitTimeout,
    port_open,
    start_group,
    stop_group,
    wait_http,
)
from infra.settings import PROJECT_ROOT, Settings


class DemoError(CRMError):
    """A demo service did not come up; the message names its log."""


@dataclass(frozen=True)
class App:
    name: str
    command: list[str]
    port: int
    ready_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def scorer_app(port: int) -> App:
    command = [_bin("bentoml"), "serve", "serving.service:Scorer", "--host", "127.0.0.1"]
    return App("scorer", [*command, "--port", str(port)], port, "/readyz")


def explorer_app(port: int) -> App:
    command = [
        _bin("streamlit"),
        "run",
        "serving/explorer/app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    return App("explorer", command, port, "/_stcore/health")


@contextmanager
def running(
    apps: list[App],
    settings: Settings,
    on_event: Callable[[str], None],
    timeout_s: float = 300,
) -> Iterator[list[App]]:
    """Start `apps` in order, wait until each answers, and stop them all on exit."""
    logs = (settings.home / "logs").resolve()
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CRM_SCORER_URL": apps[0].url if apps else ""}
    started: list[tuple[App, subprocess.Popen[bytes]]] = []
    try:
        for app in apps:
            if port_open(app.port):
                raise DemoError(
                    f"Port {app.port} for the {app.name} is taken: stop what uses it or choose "
                    f"another port (`crm demo --help`)."
                )
            process = start_group(app.command, logs / f"{app.name}.log", cwd=PROJECT_ROOT, env=env)
            started.append((app, process))
            _wait_ready(app, process, logs / f"{app.name}.log", timeout_s)
            on_event(f"{app.name} ready at {app.url}")
        yield apps
    finally:
        with _signals_ignored():  # a second Ctrl-C or SIGTERM must not cut the clean-up short
            for app, process in reversed(started):
                stop_group(process.pid, grace_s=20)
                on_event(f"{app.name} stopped")


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside the block (main thread only: where handlers live)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def serve(
    settings: Settings,
    scorer_port: int,
    explorer_port: int,
    *,
    wait: bool,
    started: float,
    say: Callable[[str], None],
) -> None:
    """Start the scorer and the explorer; with `wait`, keep them up until Ctrl-C or SIGTERM.

    `started` is when the command began (`time.perf_counter()`), for the "ready after" line.
    """
    apps = [scorer_app(scorer_port), explorer_app(explorer_port)]
    interrupt_on_signals()
    with running(apps, settings, on_event=lambda msg: say(f"  {msg}")):
        say(
            f"\n[bold]Ready after {time.perf_counter() - started:.0f} s[/bold] "
            f"(profile {settings.profile}):\n"
            f"  scorer    {apps[0].url}  (OpenAPI docs at {apps[0].url}/docs)\n"
            f"  explorer  {apps[1].url}\n"
        )
        if not wait:
            return
        say("Ctrl-C stops both.")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            say("\nStopping…")


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo cleanly, even when the shell that started us
    ignores SIGINT (as non-interactive shells do for background jobs)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def _wait_ready(app: App, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    try:
        wait_http(app.url + app.ready_path, process, timeout_s=timeout_s, what=f"the {app.name}")
    except (ProcessExited, WaitTimeout) as exc:
        raise DemoError(f"{exc}: see {log}\n{_tail(log)}") from None


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)
