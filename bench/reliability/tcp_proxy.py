"""A TCP proxy in front of a server, to fail it without touching the server itself.

Three states: forwarding; `freeze()` (connections are still accepted and kept open, but no byte
goes through in either direction: a server that stopped answering, as a hung or SIGSTOPped
PostgreSQL looks from the network); `stop()` (every connection cut and the port closed: a
killed server). `thaw()` and `start()` undo them. Used by the reliability bench and the
scorer's integration tests.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`, one thread pair per connection."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    def start(self) -> None:
        """Listen and forward (again, after `stop`)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)  # closing a socket does not wake a blocked accept(): poll
        self._listener = listener
        self._flowing.set()
        self._running.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Cut every connection and close the port: the server looks killed."""
        if self._listener is not None:
            self._running.clear()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        self._flowing.set()  # frozen pumps wake up, find their sockets closed and end

    def freeze(self) -> None:
        """Keep accepting and holding connections, forward nothing: the server looks hung."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again; what was held goes through (the server looks resumed)."""
        self._flowing.set()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()  # frozen: hold the bytes (the kernel buffers the rest)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
