"""Latency per route through the local gateway: clients sending requests back to back."""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.environments import Environments, http_client
from player_sessions_local.bench.options import BATCH_EVENTS, METRIC_HOURS, TARGET_P90_MS

Request = tuple[str, str, bytes | None]


@dataclass
class RouteLatency:
    name: str
    kind: str
    """ingest, players, metric or page: which target applies."""
    cache: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def target_ms(self) -> float:
        return TARGET_P90_MS[self.kind]

    @property
    def met(self) -> bool:
        return self.errors == 0 and self.percentile(0.9) <= self.target_ms


def measure_route(
    environments: Environments,
    make_request: Callable[[random.Random], Request],
    clients: int,
    seconds: float,
    seed: int,
) -> tuple[list[float], int, str]:
    """``clients`` threads send requests back to back for ``seconds``; a status of 300 or more is an error."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(number: int, rng: random.Random) -> None:
        mine: list[float] = []
        with http_client(environments.url_for(number)) as client:
            while time.monotonic() < deadline:
                method, path, body = make_request(rng)
                started = time.perf_counter()
                try:
                    status, answer = client.request(method, path, body)
                except (OSError, http.client.HTTPException) as error:
                    errors.append(f"{method} {path}: {type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if status >= 300:
                    errors.append(f"{method} {path}: HTTP {status} {answer[:200]!r}")
                else:
                    mine.append(elapsed)
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=client_loop, args=(i, random.Random(seed + i))) for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(errors), errors[0] if errors else ""


def fresh_batch(rng: random.Random, players: Sequence[tuple[str, str]]) -> bytes:
    """Ten events as a game client sends them: five sessions of known players that ended in the last half
    hour, start and end in the same batch."""
    now = datetime.now(UTC)
    batch = []
    for _ in range(BATCH_EVENTS // 2):
        player, country = rng.choice(players)
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        started = now - timedelta(seconds=rng.uniform(60, 1800))
        ended = started + (now - started) * rng.random()
        batch.append(
            {
                "event": "start",
                "player_id": player,
                "session_id": session_id,
                "country": country,
                "ts": started.isoformat(),
            }
        )
        batch.append({"event": "end", "player_id": player, "session_id": session_id, "ts": ended.isoformat()})
    return json.dumps(batch).encode()


@dataclass(frozen=True)
class RoutePlan:
    name: str
    kind: str
    cache: str
    environments: Environments
    make_request: Callable[[random.Random], Request]


def route_plans(cached: Environments, uncached: Environments, expected: ExpectedRows) -> list[RoutePlan]:
    # Drawn as the data is: active players and big countries more often.
    player_draws = [player for player, _, _ in expected.starts.values() if player in expected.completed]
    player_countries = list(
        {player: (player, country) for player, country, _ in expected.starts.values()}.values()
    )
    weights = expected.starts_by_country
    countries, country_weights = list(weights), list(weights.values())

    def ingest(rng: random.Random) -> Request:
        return "POST", "/events", fresh_batch(rng, player_countries)

    def players(rng: random.Random) -> Request:
        return "GET", f"/players/{rng.choice(player_draws)}/sessions", None

    def metric(hours: int) -> Callable[[random.Random], Request]:
        return lambda _rng: ("GET", f"/countries/starts?hours={hours}", None)

    def page(rng: random.Random) -> Request:
        country = rng.choices(countries, country_weights)[0]
        return "GET", f"/countries/{country}/starts?hours={rng.choice(METRIC_HOURS)}&limit=100", None

    plans = []
    for cache, environments in (("on", cached), ("off", uncached)):
        plans.append(RoutePlan("GET /players/{id}/sessions", "players", cache, environments, players))
    for hours in METRIC_HOURS:
        for cache, environments in (("on", cached), ("off", uncached)):
            plans.append(
                RoutePlan(
                    f"GET /countries/starts?hours={hours}", "metric", cache, environments, metric(hours)
                )
            )
    for cache, environments in (("on", cached), ("off", uncached)):
        plans.append(RoutePlan("GET /countries/{c}/starts (limit 100)", "page", cache, environments, page))
    # Last: its fresh sessions land in the open hour, which every country read counts row by row.
    plans.append(RoutePlan("POST /events (10 events)", "ingest", "on", cached, ingest))
    return plans


def measure_latency(
    plans: Sequence[RoutePlan], clients: int, seconds: float, seed: int
) -> list[RouteLatency]:
    results = []
    for number, plan in enumerate(plans):
        # A few requests first, not counted: imports, prepared statements, connections of every client.
        measure_route(
            plan.environments, plan.make_request, clients, min(1.0, seconds / 4), seed + 1000 * number
        )
        latencies, errors, first_error = measure_route(
            plan.environments, plan.make_request, clients, seconds, seed + 1000 * number + 500
        )
        result = RouteLatency(plan.name, plan.kind, plan.cache, latencies, errors, first_error)
        print(
            f"  {route_label(result):55} {len(latencies):>6} requests, p90 {result.percentile(0.9):6.1f} ms",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    return results


def route_label(result: RouteLatency) -> str:
    return f"{result.name} [cache {result.cache}]" if result.kind != "ingest" else result.name


@dataclass
class RouteStatsPair:
    """Two answers to one question, timed alternately by one client: ours and a reference."""

    label: str
    ours_ms: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)
    rows: int = 0
    reference_rows: int = 0

    @staticmethod
    def _p(values: list[float], fraction: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")

    def ours(self, fraction: float) -> float:
        return self._p(self.ours_ms, fraction)

    def reference(self, fraction: float) -> float:
        return self._p(self.reference_ms, fraction)

    @property
    def met(self) -> bool:
        return self.rows == self.reference_rows and self.ours(0.9) <= self.reference(0.9)


def time_pair(ours: tuple[str, str], seed: tuple[str, str], seconds: float, label: str) -> RouteStatsPair:
    """One client each, the two requests alternating for ``seconds`` (after a few untimed ones), so that the
    machine's noise falls on both alike; also checks both list the same number of starts."""
    pair = RouteStatsPair(label)
    with http_client(ours[0]) as mine, http_client(seed[0]) as theirs:
        pair.rows = len(mine.get_json(ours[1])["sessions"])
        pair.reference_rows = len(theirs.get_json(seed[1])["sessions"])
        for _ in range(3):
            mine.request("GET", ours[1])
            theirs.request("GET", seed[1])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for client, path, sink in ((mine, ours[1], pair.ours_ms), (theirs, seed[1], pair.reference_ms)):
                started = time.perf_counter()
                status, _ = client.request("GET", path)
                if status == 200:
                    sink.append((time.perf_counter() - started) * 1000)
    return pair
