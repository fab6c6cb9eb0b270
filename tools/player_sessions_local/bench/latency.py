"""Latency per route through the local gateway: clients sending requests back to back."""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from player_sessions.routes import PLAYER_EVENTS_PATH, STUDIO_EVENTS_PATH
from player_sessions_local import local_auth
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.environments import Environments, http_client
from player_sessions_local.bench.options import API_KEY, LIVE_OPS_PATHS, METRIC_HOURS, TARGET_P90_MS
from player_sessions_local.cpu_profile import CpuMeter
from player_sessions_local.measure.batches import completed_sessions_batch
from player_sessions_local.measure.http_client import Prove, Request, drive
from player_sessions_local.measure.stats import Latencies, percentile


@dataclass
class RouteLatency(Latencies):
    name: str = ""
    kind: str = ""
    """ingest, players, metric or page: which target applies."""
    cache: str = ""
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per answered request of the timed pass, by component (cpu_profile.COMPONENTS)."""

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
    prove: Prove | None = None
    """A game client's token for each request; None: signed as the studio."""


def fixed(method: str, path: str) -> Callable[[random.Random], Request]:
    """The same request every time."""
    return lambda _rng: (method, path, None)


PLAYER_TOKEN_POOL = 16
"""Players whose tokens the 'authorizer cached' plan reuses: after their first request each, API Gateway (the
local gateway as it) answers from its cache of the authorizer's answers."""


def _player_of(body: bytes | None) -> str:
    return str(json.loads(body or b"[]")[0]["player_id"])


def reused_tokens() -> Prove:
    """One token per player, minted once: after its first request, the authorizer's answer is cached."""
    tokens: dict[str, str] = {}

    def prove(_method: str, _path: str, body: bytes | None) -> dict[str, str]:
        player = _player_of(body)
        if player not in tokens:
            tokens[player] = local_auth.token(player)
        return {"Authorization": f"Bearer {tokens[player]}"}

    return prove


def fresh_tokens() -> Prove:
    """A new token for every request (its own ``jti``): the authorizer runs for each one."""

    def prove(_method: str, _path: str, body: bytes | None) -> dict[str, str]:
        token = local_auth.token(_player_of(body), claims={"jti": uuid.uuid4().hex})
        return {"Authorization": f"Bearer {token}"}

    return prove


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

    def own_events(pool: Sequence[tuple[str, str]]) -> Callable[[random.Random], Request]:
        """A game client's batch: five sessions of one player."""
        return lambda rng: ("POST", PLAYER_EVENTS_PATH, fresh_batch(rng, [rng.choice(pool)]))

    def players(rng: random.Random) -> Request:
        return "GET", f"/players/{rng.choice(player_draws)}/sessions", None

    def metric(hours: int) -> Callable[[random.Random], Request]:
        return fixed("GET", f"/countries/starts?hours={hours}")

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
    for path in LIVE_OPS_PATHS:
        for cache, environments in (("on", cached), ("off", uncached)):
            plans.append(RoutePlan(f"GET {path}", "metric", cache, environments, fixed("GET", path)))
    for cache, environments in (("on", cached), ("off", uncached)):
        plans.append(RoutePlan("GET /countries/{c}/starts (limit 100)", "page", cache, environments, page))
    # Last: its fresh sessions land in the open hour, which every country read counts row by row.
    plans.append(RoutePlan("POST /events (10 events)", "ingest", "on", cached, ingest))
    # The same batches from game clients, each with its player's token: what the authorizer costs a request
    # when its answer is cached, and when it runs for every request.
    plans.append(
        RoutePlan(
            "POST /events (player token, authorizer cached)",
            "ingest",
            "on",
            cached,
            own_events(player_countries[:PLAYER_TOKEN_POOL]),
            reused_tokens(),
        )
    )
    plans.append(
        RoutePlan(
            "POST /events (new player token each request)",
            "ingest",
            "on",
            cached,
            own_events(player_countries),
            fresh_tokens(),
        )
    )
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
            prove=plan.prove,
        )
        meter = CpuMeter(plan.environments.gateways[0].process.pid)
        meter.start()
        measured = drive(
            plan.environments.url_for,
            plan.make_request,
            clients=clients,
            seconds=seconds,
            seed=seed + 1000 * number + 500,
            api_key=API_KEY,
            prove=plan.prove,
        )
        cpu = meter.stop().per_request_ms(len(measured.latencies_ms))
        result = RouteLatency(
            measured.latencies_ms,
            measured.errors,
            measured.first_error,
            plan.name,
            plan.kind,
            plan.cache,
            cpu,
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
