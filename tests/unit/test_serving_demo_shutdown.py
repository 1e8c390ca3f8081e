"""`crm demo` stops the scorer and the explorer whatever signals arrive, workers included.

Regression of issue 12 (5): `timeout 60 make demo` left the BentoML scorer running. The demo
got SIGTERM two or three times (timeout's process group, make, `uv run` each pass one on); the
second KeyboardInterrupt cut the clean-up short after the explorer. And a BentoML worker runs
in a session of its own (circus calls setsid), out of reach of a signal to the server's group.
The servers here are small stand-ins with the same shape: a leader that starts its worker in a
new session, and takes a moment to shut down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from infra.processes import port_open, stop_group, wait_until
from tests.support.cli import ROOT
from tests.support.servers import free_port

LEADER = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    port, grace = sys.argv[1], float(sys.argv[2])
    worker = subprocess.Popen(
        [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    def stop(*_):
        time.sleep(grace)  # a graceful shutdown takes a moment
        worker.terminate()
        worker.wait()
        sys.exit(0)
    if grace >= 0:
        signal.signal(signal.SIGTERM, stop)  # else: SIGTERM kills the leader, not its worker
    while True:
        time.sleep(0.1)
    """
)

DEMO = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from crm.demo import App, interrupt_on_signals, running
    from infra.settings import Settings

    leader, home, scorer_port, explorer_port = sys.argv[1:5]
    apps = [
        App("scorer", [sys.executable, leader, scorer_port, "1"], int(scorer_port), "/"),
        App("explorer", [sys.executable, leader, explorer_port, "1"], int(explorer_port), "/"),
    ]
    interrupt_on_signals()
    settings = Settings(profile="local", home=Path(home), _env_file=None)
    try:
        with running(apps, settings, on_event=lambda m: print(m, flush=True), timeout_s=60):
            print("READY", flush=True)
            while True:
                time.sleep(0.2)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def _ours(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = process.info["environ"] or {}
            if env.get("DEMO_TEST_MARKER") == marker and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_repeated_sigterm_stops_every_server_and_its_worker(tmp_path: Path) -> None:
    leader = tmp_path / "leader.py"
    leader.write_text(LEADER)
    demo = tmp_path / "demo.py"
    demo.write_text(DEMO)
    ports = [free_port(), free_port()]
    marker = os.urandom(6).hex()
    env = {**os.environ, "DEMO_TEST_MARKER": marker, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(demo), str(leader), str(tmp_path / "home"), *map(str, ports)]
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        lines = []
        while (line := process.stdout.readline()) and "READY" not in line:
            lines.append(line)
        assert all(port_open(p) for p in ports), "".join(lines)
        assert len(_ours(marker)) >= 5  # the demo, two leaders, two workers
        # make forwards SIGTERM to `uv run`, which forwards it again, and `timeout` signals
        # the whole group: the demo gets it more than once, while it is stopping.
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "scorer stopped" in output and "explorer stopped" in output, output
    assert not any(port_open(p) for p in ports)
    assert _ours(marker) == []


def test_stop_group_stops_a_worker_in_its_own_session_when_the_leader_just_dies(
    tmp_path: Path,
) -> None:
    leader = tmp_path / "leader.py"
    leader.write_text(LEADER)
    port = free_port()
    marker = os.urandom(6).hex()
    env = {**os.environ, "DEMO_TEST_MARKER": marker}
    process = subprocess.Popen(
        [sys.executable, str(leader), str(port), "-1"], env=env, start_new_session=True
    )
    try:
        wait_until(lambda: port_open(port), timeout_s=30, what="the worker's port")
        stop_group(process.pid, grace_s=5)
        process.wait(timeout=5)
        assert not port_open(port)
        assert _ours(marker) == []
    finally:
        for leftover in _ours(marker):
            leftover.kill()
