"""The local gateways the benchmark measures through, and its HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from player_sessions.settings import Settings
from player_sessions_local.bench.options import API_KEY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Gateway:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gateway(name: str, settings: Settings, out: Path, max_concurrency: int) -> Gateway:
    """The local gateway in its own process, as `make serve` runs it (its pool of execution environments up to
    ``max_concurrency``), on this keyspace and Redis database."""
    port = free_port()
    env = {
        **os.environ,
        "PLAYER_SESSIONS_KEYSPACE": settings.keyspace,
        "PLAYER_SESSIONS_CASSANDRA_PORT": str(settings.cassandra_port),
        "PLAYER_SESSIONS_REDIS_URL": settings.redis_url,
        "PLAYER_SESSIONS_CACHE_ENABLED": "true" if settings.cache_enabled else "false",
        "PLAYER_SESSIONS_RETENTION_DAYS": str(settings.retention_days),
        "PLAYER_SESSIONS_API_KEY": API_KEY,
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    log_path = out / f"gateway-{name}.log"
    with log_path.open("w") as log:
        # The bench runs one builder of its own (the scheduled function); the gateways fold nothing.
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "player_sessions_local.gateway",
                "--port",
                str(port),
                "--max-concurrency",
                str(max_concurrency),
                "--no-rollup-builder",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Gateway(name, f"http://127.0.0.1:{port}", process, log_path)


def wait_until_listening(gateway: Gateway, timeout: float = 60) -> None:
    port = urlsplit(gateway.url).port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway {gateway.name} exited: {gateway.log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gateway {gateway.name} did not listen within {timeout:g} s")


@dataclass
class Environments:
    """One gateway serving one configuration: Lambda serves N concurrent requests with N execution environments,
    each running one invocation at a time; the gateway's pool does the same, started up to N."""

    name: str
    gateways: list[Gateway]
    concurrency: int = 1

    def url_for(self, client: int) -> str:
        return self.gateways[client % len(self.gateways)].url

    def pids(self) -> list[int]:
        """The gateways and every process under them (execution environments: emulators and runtimes)."""
        from player_sessions_local.cpu_profile import descendants

        return [
            pid
            for gateway in self.gateways
            for pid in (gateway.process.pid, *descendants(gateway.process.pid))
        ]

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


def start_environments(name: str, settings: Settings, count: int, out: Path) -> Environments:
    return Environments(name, [start_gateway(name, settings, out, max_concurrency=count)], count)


class HttpClient:
    """One keep-alive connection, as a game client holds one. The standard library's client: the load generator
    shares the two cores with everything it measures, so it should cost little."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"x-api-key": API_KEY}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # the next request reconnects
            raise

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
        return json.loads(body)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()


def http_client(url: str, timeout: float = 30) -> HttpClient:
    return HttpClient(url, timeout)


def warm_up(environments: Environments) -> None:
    """Imports every function and opens the connections in each process (Lambda's cold start), not timed."""

    def warm(url: str) -> None:
        with http_client(url) as client:
            client.request("POST", "/events", b"[]")
            client.request("GET", "/countries/starts?hours=0")
            client.get_json("/health")

    for gateway in environments.gateways:
        wait_until_listening(gateway)
    # As many clients at once as the pool may start environments: each one's cold start happens now.
    urls = [environments.url_for(0)] * environments.concurrency
    with ThreadPoolExecutor(len(urls)) as pool:
        list(pool.map(warm, urls))
