"""Socket helpers the tests share: whether a local port answers, and a listener served on a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on this port of 127.0.0.1 now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def serve_connections(listener: socket.socket, handle: Callable[[socket.socket], None], name: str) -> None:
    """Hands each connection the listener accepts to ``handle``, on a daemon thread, until it is closed."""

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            handle(connection)

    threading.Thread(target=accept, name=name, daemon=True).start()
