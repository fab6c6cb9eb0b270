"""A TCP proxy that can go silent: what a NAT or a firewall that dropped a connection's state looks like.

Each connection accepted on ``port`` is forwarded to the upstream, both ways, by two threads. ``stall()`` makes
every connection open at that moment stop forwarding, in both directions, without closing either side: no FIN,
no RST, the peer simply never answers again. Connections accepted afterwards are forwarded as before, as a new
flow through a NAT gets new state.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.sockets import serve_connections

BUFFER_BYTES = 64 * 1024


class _Link:
    """One proxied connection: the client's socket and the upstream's, and whether it went silent."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.silent = threading.Event()
        self.closed = threading.Event()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                data = source.recv(BUFFER_BYTES)
                if not data:
                    break
                if self.silent.is_set():
                    # Swallowed: the sender's bytes are acknowledged by this host's kernel and never arrive.
                    self.closed.wait()
                    return
                sink.sendall(data)
        except OSError:
            pass
        if not self.silent.is_set():
            self.close()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class StallingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self.accepted = 0
        serve_connections(self._listener, self._link, name="stalling-proxy")

    def _link(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            self._links.append(link)
            self.accepted += 1
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=link.pump, args=(source, sink), daemon=True).start()

    def stall(self) -> int:
        """Every connection open now goes silent, both ways, and stays open; returns how many did."""
        with self._lock:
            live = [link for link in self._links if not link.closed.is_set()]
        for link in live:
            link.silent.set()
        return len(live)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
