"""Profiles one route with pyinstrument, in-process: the local gateway's whole decision for each request
(routing, the proxy event, the function's real ``lambda_handler``, the domain, the driver), minus the socket.

    python -m player_sessions_local.bench_profile "GET /countries/starts?hours=24" [--requests 300]
    python -m player_sessions_local.bench_profile "POST /events" [--cache off] [--html profile.html]

Run it after `make bench` (or `python -m player_sessions_local.bench --quick`): it reads the benchmark's
keyspace and Redis database. ``POST /events`` sends the benchmark's fresh 10-event batches; ``{player}`` and
``{country}`` in a path are drawn from the loaded data (or name one: ``/countries/US/starts``). It prints the mean time per request and pyinstrument's
call tree (frames under 2% hidden).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.bench_profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("route", help='"METHOD /path?query", e.g. "GET /countries/starts?hours=8760"')
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cache", choices=["on", "off"], default="on")
    parser.add_argument("--keyspace", default="player_sessions_bench")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--html", type=Path, default=None, help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)

    # The handlers read their settings from the environment, once: set it before anything imports them.
    from player_sessions.settings import Settings
    from player_sessions_local.bench.local_stack import redis_url_with_db

    base = Settings()
    os.environ["PLAYER_SESSIONS_KEYSPACE"] = args.keyspace
    os.environ["PLAYER_SESSIONS_REDIS_URL"] = redis_url_with_db(base.redis_url, args.redis_db)
    os.environ["PLAYER_SESSIONS_CACHE_ENABLED"] = "true" if args.cache == "on" else "false"
    from player_sessions_local.no_metrics import disable_service_metrics

    disable_service_metrics()
    os.environ.pop("PLAYER_SESSIONS_API_KEY", None)
    method, _, target = args.route.partition(" ")
    path, _, query = target.partition("?")
    os.environ.update(_function_login(method, path))

    from pyinstrument import Profiler

    from player_sessions.bootstrap import build_services
    from player_sessions_local.bench.latency import fresh_batch
    from player_sessions_local.cassandra_roles import as_admin
    from player_sessions_local.gateway import create_server
    from player_sessions_local.gateway.local_functions import ensure_repository_root_on_path
    from player_sessions_local.gateway.routing import HttpRequest

    ensure_repository_root_on_path()
    rng = random.Random(7)
    players, countries = _players_and_countries(build_services(as_admin(Settings())))
    server = create_server(port=0)

    def request() -> HttpRequest:
        body = fresh_batch(rng, players) if method == "POST" else b""
        filled = path.replace("{player}", rng.choice(players)[0]).replace("{country}", rng.choice(countries))
        headers = [("Host", "127.0.0.1"), ("Content-Type", "application/json")]
        return HttpRequest(method, filled, query, headers, body, "127.0.0.1")

    try:
        for _ in range(20):  # imports, connections, prepared statements
            _check(server.respond(request()))
        profiler = Profiler(interval=0.0005)
        started = time.perf_counter()
        with profiler:
            for _ in range(args.requests):
                _check(server.respond(request()))
        seconds = time.perf_counter() - started
    finally:
        server.server_close()
    print(
        f"{args.route} (cache {args.cache}): {args.requests} requests, {seconds / args.requests * 1000:.2f} ms "
        f"each (one at a time, profiler on)"
    )
    print(
        profiler.output_text(
            unicode=True,
            color=False,
            show_all=False,
            time="percent_of_total",
            flat=False,
            processor_options={"filter_threshold": 0.02},
        )
    )
    if args.html:
        args.html.write_text(profiler.output_html())
    return 0


def _function_login(method: str, path: str) -> dict[str, str]:
    """The route's function logs in as its own role, as its execution environments do."""
    from player_sessions.routes import ROUTES
    from player_sessions_local.cassandra_roles import function_environment
    from player_sessions_local.gateway.routing import match_route

    # A placeholder ({player}, {country}) matches its segment as any value would: the gateway's own matching.
    match = match_route(ROUTES, method, path)
    if match is None or match.route is None:
        sys.exit(f"no route answers {method} {path}")
    return function_environment(match.route.function)


def _players_and_countries(services) -> tuple[list[tuple[str, str]], list[str]]:
    """Players (with their country) and countries seen in the last day of the loaded data."""
    from datetime import timedelta

    from player_sessions.time_buckets import hour_of

    session = services.cassandra.session()
    statement = session.prepare("SELECT country, player_id FROM session_starts WHERE hour = ? AND shard = ?")
    newest = hour_of(services.clock.now())
    players: dict[str, str] = {}
    for back in range(24):
        for shard in range(services.settings.start_shards):
            for row in session.execute(statement, (newest - timedelta(hours=back), shard)):
                players[row.player_id] = row.country
    if not players:
        sys.exit("no starts in the last day of the keyspace: run the benchmark first")
    return list(players.items()), sorted(set(players.values()))


def _check(response) -> None:
    if response.status >= 300:
        sys.exit(f"HTTP {response.status}: {response.body[:300]!r}")


if __name__ == "__main__":
    raise SystemExit(main())
