"""Latency of each route under concurrent clients, through the local gateway (a quick check, not `make bench`).

    python -m player_sessions_local.route_latency --clients 8 --seconds 10 [--base-url http://127.0.0.1:3000]

For each route in turn, ``clients`` threads send requests back to back for ``seconds``; it prints the
request count, errors and p50/p90/p99 per route. Ingest sends 10-event batches of fresh, valid events
(5 completed sessions each), so it also fills the player history the read route asks for.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

COUNTRIES = ("US", "DE", "FI", "BR", "JP", "PK", "IN", "GB", "FR", "KR")


@dataclass
class RouteResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def ten_event_batch(players: list[str]) -> list[dict]:
    now = datetime.now(UTC)
    batch = []
    for _ in range(5):
        player, session_id = random.choice(players), str(uuid.uuid4())
        started = now - timedelta(minutes=random.randint(20, 600))
        batch.append(
            {
                "event": "start",
                "player_id": player,
                "session_id": session_id,
                "country": random.choice(COUNTRIES),
                "ts": started.isoformat(),
            }
        )
        batch.append(
            {
                "event": "end",
                "player_id": player,
                "session_id": session_id,
                "ts": (started + timedelta(minutes=random.randint(1, 19))).isoformat(),
            }
        )
    return batch


def run_route(
    name: str,
    send: Callable[[httpx.Client], httpx.Response],
    *,
    base_url: str,
    headers: dict[str, str],
    clients: int,
    seconds: float,
) -> RouteResult:
    result = RouteResult(name)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop() -> None:
        latencies, errors = [], 0
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = send(client)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 300
        with lock:
            result.latencies_ms.extend(latencies)
            result.errors += errors

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--api-key", default=os.environ.get("PLAYER_SESSIONS_API_KEY"))
    parser.add_argument("--only", nargs="*", help="measure only the routes whose name contains one of these")
    args = parser.parse_args(argv)
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    players = [uuid.uuid4().hex for _ in range(200)]
    routes: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = (
        [
            ("POST /events (10 events)", lambda c: c.post("/events", json=ten_event_batch(players))),
            ("GET /players/{id}/sessions", lambda c: c.get(f"/players/{random.choice(players)}/sessions")),
            ("GET /health", lambda c: c.get("/health")),
        ]
        + [
            (
                f"GET /countries/starts?hours={hours}",
                lambda c, hours=hours: c.get(f"/countries/starts?hours={hours}"),
            )
            for hours in (1, 24, 168, 8760)
        ]
        + [
            (
                "GET /countries/{c}/starts (100)",
                lambda c: c.get(
                    f"/countries/{random.choice(COUNTRIES)}/starts?hours={random.choice((1, 24, 168, 8760))}"
                ),
            ),
        ]
    )
    if args.only:
        routes = [(name, send) for name, send in routes if any(word in name for word in args.only)]
    print(f"{args.clients} clients, {args.seconds:g} s per route, against {args.base_url}")
    print(f"{'route':36} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean':>7}")
    for name, send in routes:
        result = run_route(
            name, send, base_url=args.base_url, headers=headers, clients=args.clients, seconds=args.seconds
        )
        print(
            f"{name:36} {len(result.latencies_ms):>9} {result.errors:>7} {result.percentile(0.5):>8.1f} "
            f"{result.percentile(0.9):>8.1f} {result.percentile(0.99):>8.1f} "
            f"{statistics.fmean(result.latencies_ms):>7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
