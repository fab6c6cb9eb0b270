"""The local gateways the benchmark measures through: one per configuration, each a pool of execution
environments as `make serve` runs it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from player_sessions.routes import STUDIO_EVENTS_PATH
from player_sessions.settings import Settings
from player_sessions_local.bench.options import API_KEY
from player_sessions_local.measure.http_client import HttpClient
from player_sessions_local.measure.processes import GatewayProcess, start_gateway


def http_client(url: str, timeout: float = 30) -> HttpClient:
    """A client of the benchmark's gateways (they require its API key)."""
    return HttpClient(url, API_KEY, timeout)


@dataclass
class Environments:
    """One gateway serving one configuration: Lambda serves N concurrent requests with N execution environments,
    each running one invocation at a time; the gateway's pool does the same, started up to N."""

    name: str
    gateways: list[GatewayProcess]
    concurrency: int = 1

    def url_for(self, client: int) -> str:
        return self.gateways[client % len(self.gateways)].url

    def pids(self) -> list[int]:
        return [pid for gateway in self.gateways for pid in gateway.pids()]

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


def start_environments(name: str, settings: Settings, count: int, out: Path) -> Environments:
    """The gateway on this keyspace and Redis database, its pool up to ``count`` environments. The bench runs
    one builder of its own (the scheduled function): the gateways fold nothing."""
    environment = {
        "PLAYER_SESSIONS_KEYSPACE": settings.keyspace,
        "PLAYER_SESSIONS_CASSANDRA_PORT": str(settings.cassandra_port),
        "PLAYER_SESSIONS_REDIS_URL": settings.redis_url,
        "PLAYER_SESSIONS_CACHE_ENABLED": "true" if settings.cache_enabled else "false",
        "PLAYER_SESSIONS_RETENTION_DAYS": str(settings.retention_days),
        "PLAYER_SESSIONS_API_KEY": API_KEY,
    }
    arguments = ["--max-concurrency", str(count), "--no-rollup-builder"]
    gateway = start_gateway(name, environment, out / f"gateway-{name}.log", arguments)
    return Environments(name, [gateway], count)


def warm_up(environments: Environments) -> None:
    """Imports every function and opens the connections in each process (Lambda's cold start), not timed."""

    def warm(url: str) -> None:
        with http_client(url) as client:
            client.request("POST", STUDIO_EVENTS_PATH, b"[]")
            client.request("GET", "/countries/starts?hours=0")
            client.get_json("/health")

    # As many clients at once as the pool may start environments: each one's cold start happens now.
    urls = [environments.url_for(0)] * environments.concurrency
    with ThreadPoolExecutor(len(urls)) as pool:
        list(pool.map(warm, urls))
