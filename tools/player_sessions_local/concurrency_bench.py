"""The local gateway's concurrency, measured in one run: the pool of execution environments (`make serve`)
against the one-environment gateway (``--in-process``), each with as many concurrent clients as the pool runs
environments and with one, then each route's open-model capacity on both.

    make bench-concurrency                      # CONCURRENCY_EVENTS=100000 by default
    uv run python -m player_sessions_local.concurrency_bench --events 100000 --seconds 10 --clients 4

1. data: generated events loaded into a keyspace of their own (``player_sessions_concurrency``), rollups
   built;
2. two gateways started the way `make serve` starts one (one of them with ``--in-process``), each on a Redis
   database of its own (12 and 11);
3. cold starts: one request per function to the idle pool (each an environment's init, alone), then an untimed
   warm-up at full concurrency; init durations per function are read from the pool's log (INIT REPORT);
4. for each route in turn, on both gateways: ``--clients`` clients for ``--seconds``, then one client;
   CPU per component (gateway, environments, Cassandra, Redis, load generator, rest of the machine) is read
   from /proc during the concurrent runs;
5. each route's open-model capacity on both gateways, ``--capacity-seconds`` a rate (route_capacity): the
   highest fixed arrival rate with p90 <= 100 ms and no error; after ingest's rates the builders fold first.
Writes bench-results/concurrency-<time>/summary.md and results.json, and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from player_sessions.bootstrap import build_services
from player_sessions.clock import SystemClock
from player_sessions.routes import ROLLUP_BUILDER, STUDIO_EVENTS_PATH
from player_sessions.settings import Settings, get_settings
from player_sessions_local import route_capacity
from player_sessions_local.bench.live import wait_until_folded
from player_sessions_local.bench.local_stack import flush_redis, fresh_keyspace, redis_url_with_db
from player_sessions_local.bench.machine import git_commit, load_average, machine_description
from player_sessions_local.cassandra_roles import as_admin, as_function
from player_sessions_local.concurrency_summary import MODES, summary
from player_sessions_local.cpu_profile import CpuMeter, CpuProfile
from player_sessions_local.gateway.pool import DEFAULT_MAX_CONCURRENCY
from player_sessions_local.measure.batches import completed_sessions_batch
from player_sessions_local.measure.http_client import HttpClient, MakeRequest, Request, drive
from player_sessions_local.measure.processes import GatewayProcess, start_gateway
from player_sessions_local.measure.stats import Latencies

KEYSPACE = "player_sessions_concurrency"
REDIS_DBS = {"pool": 12, "one environment": 11}
"""A Redis database per gateway: one must not answer from what the other cached (the routes with random keys
would favour whichever runs second)."""
API_KEY = "concurrency-bench-key"
_INIT_REPORT = re.compile(r" (\w+)#(\d+) .*INIT REPORT\(durationMs: ([\d.]+)\)")


@dataclass(frozen=True)
class RoutePlan:
    name: str
    make_request: MakeRequest
    writes: bool = False


@dataclass
class RouteRun(Latencies):
    route: str = ""
    mode: str = ""
    clients: int = 0
    seconds: float = 0.0

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
            **self.summary(),
        }


def route_plans(players: Sequence[str], countries: Sequence[str]) -> list[RoutePlan]:
    """The routes: ingest, the player read, the metric over 24 h, a year and any X, a country page."""

    def ingest(rng: random.Random) -> Request:
        pairs = [(rng.choice(players), rng.choice(countries)) for _ in range(5)]
        return "POST", STUDIO_EVENTS_PATH, json.dumps(completed_sessions_batch(rng, pairs)).encode()

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
        RoutePlan("POST /events (10 events)", ingest, writes=True),
    ]


def run_route(
    gateway: GatewayProcess, plan: RoutePlan, *, clients: int, seconds: float, seed: int
) -> RouteRun:
    measured = drive(
        lambda _: gateway.url, plan.make_request, clients=clients, seconds=seconds, seed=seed, api_key=API_KEY
    )
    return RouteRun(
        measured.latencies_ms,
        measured.errors,
        measured.first_error,
        plan.name,
        gateway.name,
        clients,
        seconds,
    )


def prepare_data(settings: Settings, events: int, load: bool = True) -> tuple[list[str], list[str]]:
    """Loads ``events`` generated events (30 days ending now) and builds the rollups; returns players with
    completed sessions and the countries, as the data has them (busy ones more often). With ``load`` false,
    only generates them again (the same seed gives the same players and countries) for a keyspace already
    loaded by an earlier run."""
    from player_sessions.bootstrap import build_services
    from player_sessions_local.event_files import open_for_writing
    from player_sessions_local.generate import generate_events
    from player_sessions_local.load import build_rollups, load_file

    if load:
        fresh_keyspace(settings)
    players, countries = [], []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "events.jsonl"
        with open_for_writing(path) as out:
            for event in generate_events(events, seed=12, end=datetime.now(UTC), days=30):
                out.write(json.dumps(event) + "\n")
                if event["event"] == "end":
                    players.append(event["player_id"])
                elif "country" in event:
                    countries.append(event["country"])
        if not load:
            return players, countries
        services = build_services(settings.model_copy(update={"cache_enabled": False}))
        report = load_file(
            path, services, rebase_to_now=False, rejects_path=None, progress=False, processes=2
        )
        say(f"loaded {report.stored} events in {report.seconds:.0f} s; building the rollups")
        build_rollups(services)
        if services.cassandra is not None:
            services.cassandra.close()
    return players, countries


def start_mode(mode: str, settings: Settings, max_concurrency: int | None, out: Path) -> GatewayProcess:
    """The gateway as `make serve` starts it (``--in-process`` for one environment), on a Redis database of its
    own, emptied."""
    redis_url = redis_url_with_db(settings.redis_url, REDIS_DBS[mode])
    flush_redis(redis_url)
    arguments = ["--in-process"] if mode == "one environment" else []
    if mode != "one environment" and max_concurrency:
        arguments += ["--max-concurrency", str(max_concurrency)]
    environment = {
        "PLAYER_SESSIONS_KEYSPACE": settings.keyspace,
        "PLAYER_SESSIONS_REDIS_URL": redis_url,
        "PLAYER_SESSIONS_CASSANDRA_PORT": str(settings.cassandra_port),
        "PLAYER_SESSIONS_API_KEY": API_KEY,
    }
    return start_gateway(mode, environment, out / f"gateway-{mode.replace(' ', '-')}.log", arguments)


def cold_start_each_function(gateway: GatewayProcess, plans: Sequence[RoutePlan]) -> None:
    """One request per function while nothing else runs: each starts one environment, alone."""
    rng = random.Random(1)
    with HttpClient(gateway.url, API_KEY) as client:
        for plan in plans:
            status, body = client.request(*plan.make_request(rng))
            if status not in (200, 207):
                raise RuntimeError(f"{plan.name} on the {gateway.name} gateway: {status} {body[:300]!r}")


def warm_up(gateway: GatewayProcess, plans: Sequence[RoutePlan], clients: int) -> None:
    for plan in plans:
        run = run_route(gateway, plan, clients=clients, seconds=2, seed=99)
        if run.errors:
            raise RuntimeError(f"warm-up of {plan.name} on the {gateway.name} gateway: {run.first_error}")


def init_durations(log_path: Path) -> dict[str, list[float]]:
    """Each environment's INIT REPORT duration, per function, in start order."""
    durations: dict[str, list[float]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _INIT_REPORT.search(line)
        if match:
            durations.setdefault(match.group(1), []).append(float(match.group(3)))
    return durations


def measure(
    gateways: dict[str, GatewayProcess], plans: Sequence[RoutePlan], clients: int, seconds: float
) -> tuple[list[RouteRun], dict[tuple[str, str], CpuProfile]]:
    runs, profiles = [], {}
    for index, plan in enumerate(plans):
        for mode, gateway in gateways.items():
            for count in (clients, 1):
                meter = CpuMeter(gateway.process.pid)
                meter.start()
                run = run_route(gateway, plan, clients=count, seconds=seconds, seed=index)
                if count == clients:
                    profiles[(plan.name, mode)] = meter.stop()
                runs.append(run)
                say(
                    f"{plan.name:42} {mode:16} {count} clients: {run.throughput:7.1f} req/s, "
                    f"p50 {run.percentile(0.5):6.1f}  p90 {run.percentile(0.9):6.1f}  "
                    f"p99 {run.percentile(0.99):6.1f} ms, errors {run.errors}"
                )
    return runs, profiles


def measure_capacities(
    gateways: dict[str, GatewayProcess],
    plans: Sequence[RoutePlan],
    settings: Settings,
    *,
    seconds: float,
    clients: int,
) -> list[route_capacity.RouteCapacity]:
    """Each route's open-model capacity on each gateway, warmed up first (``clients`` at once); before each rate
    of a route that writes, the builders fold what the rate before it stored (so no rate pays for an earlier
    one's tail)."""
    if seconds <= 0:
        return []
    by_name = {plan.name: plan for plan in plans}
    builder = build_services(as_function(ROLLUP_BUILDER, settings), SystemClock())
    settle = wait_until_folded(builder)
    try:
        return route_capacity.measure_capacities(
            {mode: gateway.url for mode, gateway in gateways.items()},
            [(plan.name, plan.make_request, settle if plan.writes else None) for plan in plans],
            seconds=seconds,
            api_key=API_KEY,
            seed=500,
            say=say,
            warm=lambda route, mode: warm_up(gateways[mode], [by_name[route]], clients),
        )
    finally:
        if builder.cassandra is not None:
            builder.cassandra.close()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.concurrency_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--clients",
        type=int,
        default=None,
        help="closed-loop clients (default: the pool's environments, --max-concurrency or "
        f"{DEFAULT_MAX_CONCURRENCY}; more are refused with 429)",
    )
    parser.add_argument("--max-concurrency", type=int, default=None, help="the pool's (default: its own)")
    parser.add_argument(
        "--capacity-seconds", type=float, default=5.0, help="a rate of the capacity search (0: no search)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="keep the keyspace an earlier run with the same --events loaded",
    )
    options = parser.parse_args(argv)
    options.clients = options.clients or options.max_concurrency or DEFAULT_MAX_CONCURRENCY
    machine = {
        **machine_description(as_admin(get_settings())),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "load": load_average(),
    }
    out = options.out or Path("bench-results") / f"concurrency-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    base = get_settings()
    settings = as_admin(base).model_copy(update={"keyspace": KEYSPACE})
    loading = "" if options.reuse_data else f", loading them into {KEYSPACE}"
    say(f"generating {options.events:,} events{loading}")
    players, countries = prepare_data(settings, options.events, load=not options.reuse_data)
    plans = route_plans(sorted(set(players)), countries)
    gateways = {mode: start_mode(mode, settings, options.max_concurrency, out) for mode in MODES}
    try:
        for gateway in gateways.values():
            cold_start_each_function(gateway, plans)
            warm_up(gateway, plans, options.clients)
        runs, profiles = measure(gateways, plans, options.clients, options.seconds)
        cold = init_durations(gateways["pool"].log_path)
        capacities = measure_capacities(
            gateways, plans, settings, seconds=options.capacity_seconds, clients=options.clients
        )
    finally:
        for gateway in gateways.values():
            gateway.stop()
    text = summary(runs, profiles, cold, capacities, options=options, machine=machine)
    (out / "summary.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "options": {k: str(v) for k, v in vars(options).items()},
                "runs": [run.as_json() for run in runs],
                "cold_starts_ms": cold,
                "capacities": [found.as_json() for found in capacities],
                "cpu_seconds": {f"{route} | {mode}": p.seconds for (route, mode), p in profiles.items()},
            },
            indent=2,
        )
    )
    print(text)
    say(f"written to {out}")
    failed = any(run.errors for run in runs) or any(r.server_errors for c in capacities for r in c.rates)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
