"""The edge: nginx in front of the scorer, rejecting overload before Python (`crm edge`).

The config is `infra/docker/edge.conf.template`, the same file docker-compose.yml hands to the
nginx image; here it is filled from the settings (the scorer's own limits: `Limits`) and wrapped
in a main config of its own, so that nginx runs as this user with everything (pid, temp files,
log) under one state folder:

    with start_edge(settings, upstream="127.0.0.1:3001", port=3000, state_dir=Path(".edge")):
        ...  # http://127.0.0.1:3000 is the scorer behind the edge

nginx comes from the distribution (`apt-get install nginx-light`); without it, `EdgeError` says
so. The scorer keeps its own guard: the edge is the fast path, not the only one.
"""

from __future__ import annotations

import re
import shutil
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.processes import (
    ProcessExited,
    WaitTimeout,
    port_open,
    start_group,
    stop_group,
    wait_until,
)
from infra.settings import PROJECT_ROOT, Settings
from serving.errors import EdgeError
from serving.middleware import Limits

TEMPLATE = PROJECT_ROOT / "infra" / "docker" / "edge.conf.template"
NGINX_HINT = "install nginx (`apt-get install -y nginx-light`) or put its binary on PATH"
STOP_GRACE_S = 10.0
# nginx's priority increment (`nice`; applied if the user may, as root or with CAP_SYS_NICE): a
# precaution for a host whose cores the scorer's model and event-loop threads keep busy, where
# the edge's wake-ups could wait for a CPU. The overload bench did not separate its effect from
# run-to-run noise (bench/results/reliability.json, docs/serving.md).
EDGE_NICE = -10

_MAIN = """\
# Written by serving/edge.py for this run; the server block is infra/docker/edge.conf.template.
daemon off;
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    include {state}/edge.conf;
}}
"""


def render(limits: Limits, *, upstream: str, listen: str) -> str:
    """The template filled in; an unknown `${EDGE_…}` left in it is an error, not a silent gap."""
    values = {
        "EDGE_UPSTREAM": upstream,
        "EDGE_LISTEN": listen,
        "EDGE_QUEUE_LIMIT": str(limits.queue_limit),
        "EDGE_MAX_BODY_BYTES": str(limits.max_body_bytes),
        "EDGE_RETRY_AFTER_S": str(limits.retry_after_s),
    }
    text = string.Template(TEMPLATE.read_text()).safe_substitute(values)
    left = sorted(set(re.findall(r"\$\{(EDGE_[A-Z_]+)\}", text)))
    if left:
        raise EdgeError(f"{TEMPLATE} uses {', '.join(left)}, which serving/edge.py does not set.")
    return text


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise EdgeError(f"No nginx for the edge: {NGINX_HINT}.")
    return found


@dataclass(frozen=True)
class EdgeProcess:
    url: str
    pid: int
    log: Path


@contextmanager
def start_edge(
    settings: Settings,
    *,
    upstream: str,
    port: int,
    state_dir: Path,
    host: str = "127.0.0.1",
    timeout_s: float = 15.0,
) -> Iterator[EdgeProcess]:
    """nginx on `host:port` in front of `upstream` (host:port), stopped when the block ends."""
    binary = nginx_binary()
    if port_open(port, host):
        raise EdgeError(f"Port {port} is taken: stop what holds it or choose another port.")
    state = state_dir.resolve()
    for folder in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    (state / "edge.conf").write_text(
        render(Limits.from_settings(settings), upstream=upstream, listen=f"{host}:{port}")
    )
    main = state / "nginx.conf"
    main.write_text(_MAIN.format(state=state))
    log = state / "nginx.log"
    checked = start_group([binary, "-t", "-q", "-p", str(state), "-c", str(main)], log, cwd=state)
    if checked.wait(timeout=timeout_s) != 0:
        raise EdgeError(f"nginx refused the edge's config ({main}); see {log}.")
    command = [binary, "-p", str(state), "-c", str(main)]
    nice = shutil.which("nice")
    if nice is not None:  # coreutils' nice runs the command anyway if it may not renice
        command = [nice, "-n", str(EDGE_NICE), *command]
    process = start_group(command, log, cwd=state)
    try:
        wait_until(
            lambda: _started(process.poll(), port, host),
            timeout_s=timeout_s,
            interval_s=0.05,
            what=f"the edge on {host}:{port}",
        )
    except (ProcessExited, WaitTimeout) as exc:
        stop_group(process.pid, grace_s=STOP_GRACE_S)
        raise EdgeError(f"{exc}; see {log} and {state / 'error.log'}.") from None
    try:
        yield EdgeProcess(f"http://{host}:{port}", process.pid, log)
    finally:
        stop_group(process.pid, grace_s=STOP_GRACE_S)


def _started(returncode: int | None, port: int, host: str) -> bool:
    if returncode is not None:
        raise ProcessExited(f"nginx exited with code {returncode} during start-up")
    return port_open(port, host)
