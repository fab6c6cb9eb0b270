"""The Redis client, built once per process with short timeouts: the cache must never slow a request down."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from player_sessions.settings import Settings

ClientHook = Callable[["redis.Redis[bytes]"], object]
_client_hooks: list[ClientHook] = []


def on_new_client(hook: ClientHook) -> None:
    """Hands every client built from now on to ``hook`` before its first command. The service registers none;
    local tooling observes commands through it (player_sessions_local.work measures them)."""
    if hook not in _client_hooks:
        _client_hooks.append(hook)


class RedisConnection:
    """Hands out one redis-py client (it pools and re-opens its own sockets after a failure).

    A new socket sends nothing before its first command: RESP2 (no ``HELLO``), no ``CLIENT SETINFO``, no
    health-check ``PING`` (with no retry, a failed ping would only fail the command it precedes). Each would be
    a round trip on a cold start and on every reconnect. And to a frozen Redis a command sent at once waits in
    its socket and runs as Redis thaws, a write's invalidation included, where a handshake would time out and
    send nothing. (A password or TLS, if the URL asks for them, still cost their round trips.)"""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: redis.Redis[bytes] | None = None

    def client(self) -> redis.Redis[bytes]:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    timeout = self._settings.redis_timeout_seconds
                    # (types-redis predates ``protocol`` and ``driver_info``.)
                    self._client = redis.Redis.from_url(  # type: ignore[call-overload]
                        self._settings.redis_url,
                        socket_timeout=timeout,
                        socket_connect_timeout=timeout,
                        # A retry would double the worst-case wait; a miss is cheaper than a slow hit.
                        retry_on_timeout=False,
                        retry=None,
                        # A new socket sends nothing before its first command (see the class).
                        protocol=2,
                        driver_info=None,
                        health_check_interval=0,
                    )
                    for hook in _client_hooks:
                        hook(self._client)
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
