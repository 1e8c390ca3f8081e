"""What a reliability scenario of the scorer gets: the settings, a folder, a way to start a scorer.

    ctx = Context(settings=get_settings(), workdir=Path("bench/results/reliability"))
    with ctx.start_scorer(CRM_SERVING_QUEUE_LIMIT="64") as scorer:
        httpx.get(scorer.url + "/readyz")

`settings` is the active profile: its online store must be materialised and a champion
registered (`crm pipeline`). A scorer is a real `bentoml serve serving.service:Scorer` on a free
loopback port, with this process's environment plus `env` plus the overrides, stopped with its
whole process tree (BentoML's workers run in sessions of their own) when the block ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.tcp_proxy import free_port
from infra.processes import ProcessExited, WaitTimeout, start_group, stop_group, wait_http
from infra.settings import PROJECT_ROOT, Settings

BIN = Path(sys.executable).parent


@dataclass
class ScorerProcess:
    """A running scorer: its URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self, tail: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-tail:])

    def stop(self) -> None:
        stop_group(self.process.pid, grace_s=20)  # its workers too, in their own sessions


@dataclass(frozen=True)
class Context:
    settings: Settings
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)  # for the scorer, on top of os.environ
    ready_timeout_s: float = 300.0

    @contextmanager
    def start_scorer(self, name: str = "scorer", **overrides: str) -> Iterator[ScorerProcess]:
        """A scorer, ready (its /readyz answered 200), stopped at the end of the block."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.workdir / f"{name}.log"
        log.unlink(missing_ok=True)
        command = [str(BIN / "bentoml"), "serve", "serving.service:Scorer"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--working-dir", str(PROJECT_ROOT)]
        env = {**os.environ, **self.env, **overrides}
        # cwd: the scenario's folder, so no `.env` of the checkout slips in unnoticed
        process = start_group(command, log, cwd=self.workdir, env=env)
        scorer = ScorerProcess(f"http://127.0.0.1:{port}", process, log)
        try:
            wait_http(scorer.url + "/readyz", process, timeout_s=self.ready_timeout_s, what=name)
        except (ProcessExited, WaitTimeout) as exc:
            scorer.stop()
            raise RuntimeError(f"{exc}; see {log}:\n{scorer.logs()}") from None
        try:
            yield scorer
        finally:
            scorer.stop()
