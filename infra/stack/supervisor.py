"""Starting, checking and stopping the catalogue's services, and remembering what was started.

`up` starts what is not already healthy, waits for it and writes the PID of what *it* spawned to
`.stack/pids/<service>.pid`; `down` stops only those process groups and waits for their ports to
close, so a server the user started by hand is never touched. Logs go to
`.stack/logs/<service>.log`, and every start-up error quotes the end of the service's log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.processes import WaitTimeout, alive, port_open, start_group, stop_group, wait_until
from infra.settings import Settings
from infra.stack import catalogue
from infra.stack.catalogue import Service
from infra.stack.errors import StackError

# SeaweedFS flushes its volumes on SIGTERM and needs about 15 s; twice that before SIGKILL.
STOP_GRACE_S = 30.0
PORTS_CLOSE_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.25


@dataclass
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None
    started_by_us: bool
    detail: str = ""


@dataclass
class StartReport:
    name: str
    action: str  # "started", "already running"
    seconds: float


def _ignore(_message: str) -> None:
    pass


class Stack:
    """The local stack of one settings object; its state lives under `settings.stack_dir`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack_dir.resolve()
        self.services = catalogue.services(settings, self.root)

    # --- state files --------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_file(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _see_log(self, name: str) -> str:
        return f"see {self.log_file(name)}:\n{self.tail(name)}"

    # --- selection ----------------------------------------------------------------------------
    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        names = ", ".join(s.name for s in self.services)
        raise StackError(f"No service {name!r}; the stack has {names}.")

    def _select(self, only: Iterable[str] | None) -> list[Service]:
        if only is None:
            return self.services
        return [self.service(name) for name in only]

    # --- up -----------------------------------------------------------------------------------
    def up(
        self, on_event: Callable[[str], None] = _ignore, only: Iterable[str] | None = None
    ) -> list[StartReport]:
        """Start every service (or `only` those named) that is not already healthy."""
        (self.root / "pids").mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        reports = []
        for svc in self._select(only):
            started = time.monotonic()
            action = self._start(svc)
            self._wait_healthy(svc)
            self._after_start(svc)
            report = StartReport(svc.name, action, time.monotonic() - started)
            on_event(f"{svc.name}: {action} ({report.seconds:.1f} s)")
            reports.append(report)
        return reports

    def _start(self, svc: Service) -> str:
        if svc.healthy():
            return "already running"
        if svc.command is None:
            if svc.start_system is not None:
                svc.start_system()
            return "started"
        busy = [p for p in svc.ports if port_open(p)]
        if busy:
            raise StackError(
                f"{svc.name}: port(s) {busy} are taken by something that is not a healthy "
                f"{svc.name}. Stop it, or choose other ports in .env (see .env.example)."
            )
        self._spawn(svc)
        return "started"

    def _spawn(self, svc: Service) -> None:
        assert svc.command is not None
        if svc.prepare:
            svc.prepare()
        # Its own process group: `down` stops its children too.
        process = start_group(
            svc.command, self.log_file(svc.name), cwd=self.root, env={**os.environ, **svc.env}
        )
        self.pid_file(svc.name).write_text(str(process.pid))

    def _wait_healthy(self, svc: Service) -> None:
        def ready() -> bool:
            if svc.healthy():
                return True
            pid = self._pid(svc.name)
            if svc.command is not None and pid is not None and not alive(pid):
                raise StackError(f"{svc.name} exited during start-up; {self._see_log(svc.name)}")
            return False

        try:
            wait_until(
                ready,
                timeout_s=svc.start_timeout_s,
                interval_s=POLL_INTERVAL_S,
                what=f"{svc.name} to be healthy",
            )
        except WaitTimeout:
            raise StackError(
                f"{svc.name} not healthy at {svc.url} after {svc.start_timeout_s:.0f} s; "
                + self._see_log(svc.name)
            ) from None

    def _after_start(self, svc: Service) -> None:
        if svc.after_start is None:
            return
        try:
            svc.after_start()
        except StackError as exc:
            if svc.command is None:  # a system service: its log is not ours
                raise
            raise StackError(f"{exc}; {self._see_log(svc.name)}") from exc

    # --- down ---------------------------------------------------------------------------------
    def down(
        self,
        on_event: Callable[[str], None] = _ignore,
        only: Iterable[str] | None = None,
        *,
        grace_s: float = STOP_GRACE_S,
    ) -> list[str]:
        """Stop the services `up` started (or `only` those named), newest first.

        `grace_s=0` is for throwaway instances (a test's own SeaweedFS): nothing to keep, so no
        waiting ~15 s for a clean shutdown.
        """
        stopped = []
        for svc in reversed(self._select(only)):
            pid = self._pid(svc.name)
            if pid is None:
                continue
            # Even with the leader gone, workers it forked may still hold the ports.
            stop_group(pid, grace_s=grace_s)
            self._wait_ports_closed(svc)
            self.pid_file(svc.name).unlink(missing_ok=True)
            on_event(f"{svc.name}: stopped")
            stopped.append(svc.name)
        return stopped

    def _wait_ports_closed(self, svc: Service) -> None:
        try:
            wait_until(
                lambda: not any(port_open(p) for p in svc.ports),
                timeout_s=PORTS_CLOSE_TIMEOUT_S,
                interval_s=POLL_INTERVAL_S,
                what=f"the ports of {svc.name} to close",
            )
        except WaitTimeout:
            busy = [p for p in svc.ports if port_open(p)]
            raise StackError(
                f"{svc.name} stopped but port(s) {busy} still accept connections: find the "
                f"process with `ss -ltnp` and stop it."
            ) from None

    # --- status -------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in self.services:
            pid = self._pid(svc.name)
            ours = pid is not None and alive(pid)
            out.append(
                ServiceStatus(
                    name=svc.name,
                    url=svc.url,
                    healthy=svc.healthy(),
                    pid=pid if ours else None,
                    started_by_us=ours,
                    detail="" if svc.command else "system service (not stopped by `down`)",
                )
            )
        return out
