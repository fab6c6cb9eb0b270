"""Latency per route through the local gateway: clients sending requests back to back."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from player_sessions.routes import STUDIO_EVENTS_PATH
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.environments import Environments, http_client
from player_sessions_local.bench.options import API_KEY, METRIC_HOURS, TARGET_P90_MS
from player_sessions_local.measure.batches import completed_sessions_batch
from player_sessions_local.measure.http_client import Request, drive
from player_sessions_local.measure.stats import Latencies, percentile


@dataclass
class RouteLatency(Latencies):
    name: str = ""
    kind: str = ""
    """ingest, players, metric or page: which target applies."""
    cache: str = ""

    @property
    def target_ms(self) -> float:
        return TARGET_P90_MS[self.kind]

    @property
    def met(self) -> bool:
        return self.errors == 0 and self.percentile(0.9) <= self.target_ms


def fresh_batch(rng: random.Random, players: Sequence[tuple[str, str]]) -> bytes:
    """Ten events as a game client sends them: five sessions of known players that ended in the last half
    hour, start and end in the same batch."""
    return json.dumps(completed_sessions_batch(rng, players)).encode()


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
        return "POST", STUDIO_EVENTS_PATH, fresh_batch(rng, player_countries)

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
        drive(
            plan.environments.url_for,
            plan.make_request,
            clients=clients,
            seconds=min(1.0, seconds / 4),
            seed=seed + 1000 * number,
            api_key=API_KEY,
        )
        measured = drive(
            plan.environments.url_for,
            plan.make_request,
            clients=clients,
            seconds=seconds,
            seed=seed + 1000 * number + 500,
            api_key=API_KEY,
        )
        result = RouteLatency(
            measured.latencies_ms, measured.errors, measured.first_error, plan.name, plan.kind, plan.cache
        )
        print(
            f"  {route_label(result):55} {len(result.latencies_ms):>6} requests, "
            f"p90 {result.percentile(0.9):6.1f} ms",
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

    def ours(self, fraction: float) -> float:
        return percentile(self.ours_ms, fraction)

    def reference(self, fraction: float) -> float:
        return percentile(self.reference_ms, fraction)

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
