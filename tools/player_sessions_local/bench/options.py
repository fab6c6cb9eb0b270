"""The benchmark's options, targets and the constants every phase shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from player_sessions_local.load import CHUNKS_IN_FLIGHT_PER_PROCESS

TARGET_P90_MS = {"ingest": 25.0, "players": 15.0, "metric": 50.0, "page": 25.0}


TARGET_LOADER_RATIO = 0.70


TARGET_HTTP_RATIO = 0.30


METRIC_HOURS = (1, 24, 168, 8760)
LIVE_OPS_PATHS = ("/countries/online", "/countries/session-lengths?hours=24")
"""The live-ops routes the benchmark times, as a dashboard asks them."""


BATCH_EVENTS = 10


API_KEY = "bench-api-key"


BARE_ATTEMPTS = 3


@dataclass(frozen=True)
class BenchOptions:
    events: int
    out: Path
    seconds: float
    clients: int
    single_seconds: float
    """Per route, one client at a time (the service time without queueing); 0 skips that pass."""
    http_events: int
    http_clients: int
    processes: int
    chunks_in_flight: int
    keyspace: str
    redis_db: int
    seed: int
    days: int
    retention_days: int | None
    """None: the service's setting (365); the quick size keeps 31 days (an 8760-hour window is clamped to it)."""
    quick: bool
    live_bulk: int
    """Starts stamped within the last ten minutes, stored before the loaded reads (the live scenario)."""
    live_rate: float
    """Starts per second POSTed during the live scenario."""
    live_seconds: float
    burst_seconds: float
    """Per rate of the sustained burst (0 skips it)."""
    capacity_seconds: float
    privacy_heavy_sessions: int = 5_000
    """Completed sessions of the heavy player the privacy phase exports and erases (0 skips the phase)."""
    """Per rate of the open-model capacity search (0 skips it)."""


_OPTIONS: tuple[tuple[str, type, object, str], ...] = (
    ("--events", int, None, "events to generate and load (default 1,000,000)"),
    ("--out", Path, None, "results directory (default bench-results/DATE)"),
    ("--seconds", float, None, "per route (default 10; 1 with --quick)"),
    (
        "--single-client-seconds",
        float,
        None,
        (
            "per route, one client at a time, after the concurrent pass, and four times as long for the page "
            "against the seed's list (default 5; 0.5 with --quick; 0 skips both)"
        ),
    ),
    ("--clients", int, 4, "concurrent clients per route (the gateway starts as many execution environments)"),
    (
        "--http-events",
        int,
        None,
        "the file's first events posted through HTTP (default 100,000; 2,000 quick)",
    ),
    ("--http-clients", int, 4, "concurrent clients posting batches (as many execution environments)"),
    ("--processes", int, 2, "loader and bare-loop processes"),
    ("--chunks-in-flight", int, CHUNKS_IN_FLIGHT_PER_PROCESS, "chunks each loader process ingests at once"),
    (
        "--keyspace",
        str,
        "player_sessions_bench",
        "the loaded keyspace; the bare loop and HTTP ingest use it with _bare and _http",
    ),
    ("--redis-db", int, 14, "the Redis database of the cached configuration"),
    ("--seed", int, 42, "the generator's seed"),
    ("--days", int, 30, "how many days the generated events span"),
    (
        "--retention-days",
        int,
        None,
        "the service's retention in the bench keyspaces (default: its setting; 31 with --quick)",
    ),
    (
        "--live-bulk",
        int,
        None,
        "sessions (nine in ten ended) stored before the loaded reads (default 100,000; 2,000 quick)",
    ),
    ("--live-rate", float, 100.0, "starts/s POSTed in the live scenario"),
    ("--live-seconds", float, None, "length of the live scenario (default 60; 9 with --quick)"),
    (
        "--burst-seconds",
        float,
        None,
        "per rate of the sustained burst: 100/s, 278/s, the HTTP maximum (default 60; 6 with --quick; 0 skips it)",
    ),
    (
        "--capacity-seconds",
        float,
        None,
        "per rate of the open-model capacity search (default 20; 2 with --quick; 0 skips it)",
    ),
    (
        "--privacy-heavy-sessions",
        int,
        None,
        "sessions of the heavy player the privacy phase erases (default 5,000; 200 with --quick; 0 skips it)",
    ),
)
"""Every option but ``--quick``: flag, type, default, help."""


_AS_GIVEN = (
    "clients",
    "http_clients",
    "processes",
    "chunks_in_flight",
    "keyspace",
    "redis_db",
    "seed",
    "days",
    "quick",
    "live_rate",
)
"""The options whose value the benchmark takes as given, under the same name."""


def parse_options(argv: Sequence[str] | None) -> BenchOptions:
    from player_sessions_local import bench

    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.bench",
        description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 events, 1 s per route")
    for flag, kind, default, description in _OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=description)
    args = parser.parse_args(argv)
    events = args.events or (5_000 if args.quick else 1_000_000)
    out = args.out or Path("bench-results") / datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    http_events = args.http_events or (2_000 if args.quick else 100_000)
    return BenchOptions(
        events=events,
        out=out,
        retention_days=args.retention_days or (31 if args.quick else None),
        seconds=args.seconds or (1.0 if args.quick else 10.0),
        single_seconds=(
            args.single_client_seconds
            if args.single_client_seconds is not None
            else 0.5
            if args.quick
            else 5.0
        ),
        http_events=min(http_events, events),
        **{name: getattr(args, name) for name in _AS_GIVEN},
        live_bulk=args.live_bulk or (2_000 if args.quick else 100_000),
        live_seconds=args.live_seconds or (9.0 if args.quick else 60.0),
        burst_seconds=args.burst_seconds if args.burst_seconds is not None else 6.0 if args.quick else 60.0,
        capacity_seconds=(
            args.capacity_seconds if args.capacity_seconds is not None else 2.0 if args.quick else 20.0
        ),
        privacy_heavy_sessions=(
            args.privacy_heavy_sessions
            if args.privacy_heavy_sessions is not None
            else 200
            if args.quick
            else 5_000
        ),
    )


def say(message: str) -> None:
    print(f"[{datetime.now(UTC).astimezone():%H:%M:%S}] {message}", file=sys.stderr, flush=True)
