"""Concurrent HTTP clients for one route at a time, and what they measured: requests, errors, throughput and
p50/p90/p99. Each client holds one keep-alive connection (the standard library's client: the load generator
shares the cores with everything it measures, so it should cost little)."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

Request = tuple[str, str, bytes | None]
"""Method, path with query, body."""
MakeRequest = Callable[[random.Random], Request]


@dataclass(frozen=True)
class RoutePlan:
    name: str
    make_request: MakeRequest


@dataclass
class RouteRun:
    route: str
    mode: str
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict:
        return {
            "route": self.route,
            "mode": self.mode,
            "clients": self.clients,
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            "throughput": round(self.throughput, 1),
            **{f"p{int(q * 100)}_ms": round(self.percentile(q), 1) for q in (0.5, 0.9, 0.99)},
        }


class Client:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 60) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None:
            raise ValueError(f"no host in {base_url!r}")
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._headers = {"x-api-key": api_key} if api_key else {}

    def send(self, request: Request) -> tuple[int, bytes]:
        method, path, body = request
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # the next request reconnects
            raise

    def close(self) -> None:
        self._connection.close()


def run_route(
    base_url: str, api_key: str | None, plan: RoutePlan, *, mode: str, clients: int, seconds: float, seed: int
) -> RouteRun:
    """``clients`` threads send ``plan``'s requests back to back for ``seconds``."""
    run = RouteRun(plan.name, mode, clients, seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client_loop(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        client = Client(base_url, api_key)
        latencies, errors, first_error = [], 0, ""
        start.wait()
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                request = plan.make_request(rng)
                began = time.perf_counter()
                try:
                    status, body = client.send(request)
                except (OSError, http.client.HTTPException) as error:
                    status, body = 0, str(error).encode()
                elapsed = (time.perf_counter() - began) * 1000
                if status in (200, 207):
                    latencies.append(elapsed)
                else:
                    errors += 1
                    first_error = first_error or f"{status} {body[:200]!r}"
        finally:
            client.close()
        with lock:
            run.latencies_ms += latencies
            run.errors += errors
            run.first_error = run.first_error or first_error

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return run


def route_plans(players: Sequence[str], countries: Sequence[str]) -> list[RoutePlan]:
    """The issue's routes: ingest, the player read, the metric over 24 h, a year and any X, a country page."""

    def ingest(rng: random.Random) -> Request:
        return "POST", "/events", json.dumps(ten_event_batch(rng, players, countries)).encode()

    def metric(hours: int | None) -> MakeRequest:
        return lambda rng: ("GET", f"/countries/starts?hours={hours or rng.randint(1, 8760)}", None)

    def page(rng: random.Random) -> Request:
        hours = rng.choice((1, 24, 168, 8760))
        return "GET", f"/countries/{rng.choice(countries)}/starts?hours={hours}&limit=100", None

    return [
        RoutePlan(
            "GET /players/{id}/sessions",
            lambda rng: ("GET", f"/players/{rng.choice(players)}/sessions", None),
        ),
        RoutePlan("GET /countries/starts?hours=24", metric(24)),
        RoutePlan("GET /countries/starts?hours=8760", metric(8760)),
        RoutePlan("GET /countries/starts?hours=<random 1-8760>", metric(None)),
        RoutePlan("GET /countries/{c}/starts (limit 100)", page),
        # Last: its sessions land in the open hours, which every count reads row by row.
        RoutePlan("POST /events (10 events)", ingest),
    ]


def ten_event_batch(rng: random.Random, players: Sequence[str], countries: Sequence[str]) -> list[dict]:
    """Five fresh completed sessions of known players, ended within the last hours."""
    now = datetime.now(UTC)
    batch = []
    for _ in range(5):
        player, session_id = rng.choice(players), str(uuid.UUID(int=rng.getrandbits(128), version=4))
        started = now - timedelta(minutes=rng.randint(20, 600))
        batch.append(
            {
                "event": "start",
                "player_id": player,
                "session_id": session_id,
                "country": rng.choice(countries),
                "ts": started.isoformat(),
            }
        )
        batch.append(
            {
                "event": "end",
                "player_id": player,
                "session_id": session_id,
                "ts": (started + timedelta(minutes=rng.randint(1, 19))).isoformat(),
            }
        )
    return batch
