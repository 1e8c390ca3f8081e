"""Bounded store calls (issue 12, 2): a read stuck on a silent server ends at its deadline, and a
server that accepts connections but never answers cannot hang the connect. No real database:
a socket pair, and a listening socket that nobody serves (a hung PostgreSQL, as the network
sees it)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from feast.infra.utils.postgres.postgres_config import PostgreSQLConfig

from serving.online import PostgresConnection, StoreTimeouts, Watchdog


def test_a_read_past_its_deadline_is_ended_and_a_finished_one_is_left_alone() -> None:
    watchdog = Watchdog(tick_s=0.02)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.perf_counter()
        with watchdog.deadline(ours.fileno(), 0.2):
            data = ours.recv(10)  # the peer never writes: blocks until the watchdog fires
        assert data == b"" and 0.2 <= time.perf_counter() - started < 1.0
        assert watchdog.fired == 1

    ours, theirs = socket.socketpair()
    with ours, theirs:
        with watchdog.deadline(ours.fileno(), 0.1):
            theirs.sendall(b"x")
            assert ours.recv(10) == b"x"
        time.sleep(0.3)  # well past the deadline: the socket must still work
        theirs.sendall(b"y")
        assert ours.recv(10) == b"y"
        assert watchdog.fired == 1


@pytest.fixture
def silent_server() -> socket.socket:
    """Accepts TCP connections (the kernel does) and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


def test_a_server_that_never_answers_fails_the_connect_in_time_then_reads_fail_at_once(
    silent_server: socket.socket,
) -> None:
    config = PostgreSQLConfig(
        host="127.0.0.1",
        port=silent_server.getsockname()[1],
        database="db",
        user="u",
        password="p",
        sslmode="disable",
    )
    connection = PostgresConnection(config, StoreTimeouts(connect_s=2, read_s=0.5, retry_s=0.2))
    try:
        started = time.perf_counter()
        connection.open()  # does not raise: the service starts, reads answer 503
        assert time.perf_counter() - started < 4
        assert not connection.connected
        started = time.perf_counter()
        with pytest.raises(ConnectionError):
            connection.query("SELECT 1", [])
        assert time.perf_counter() - started < 0.05  # fails fast while down
        assert any(t.name == "store-reconnect" for t in threading.enumerate())
    finally:
        connection.close()
