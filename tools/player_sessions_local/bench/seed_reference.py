"""The seed project's unpaged list, rebuilt as the reference a page must not be slower than.

The seed answered "one country's starts" with every start of the country in the window, read from one Cassandra
partition and sent unpaged as JSON over HTTP (743 starts in 27 ms p90, uncached, one client, as measured in the
issue). This is that answer, on the same machine, driver and data, in the same run: a table keyed by country,
newest first, filled with exactly the starts the page lists, and a minimal HTTP server in a process of its own.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.process import BaseProcess
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from cassandra.concurrent import execute_concurrent

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.models import format_timestamp
from player_sessions.settings import Settings
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.latency import RouteStatsPair, time_pair
from player_sessions_local.bench.options import say
from player_sessions_local.measure.processes import free_port

# Bench-only table (not the service's schema); names are constants, never input.
CREATE = (
    "CREATE TABLE IF NOT EXISTS seed_country_starts (country text, ts timestamp, session_id uuid, player_id text, "
    "PRIMARY KEY ((country), ts, session_id)) WITH CLUSTERING ORDER BY (ts DESC, session_id ASC)"
)
INSERT = "INSERT INTO seed_country_starts (country, ts, session_id, player_id) VALUES (?, ?, ?, ?)"
READ = "SELECT ts, session_id, player_id FROM seed_country_starts WHERE country = ? AND ts >= ? AND ts <= ?"


def fill(settings: Settings, country: str, starts: Sequence[tuple[UUID, str, datetime]]) -> None:
    connection = CassandraConnection(settings)
    try:
        session = connection.session()
        session.execute(CREATE, timeout=60)
        insert = session.prepare(INSERT)
        execute_concurrent(
            session,
            [(insert, (country, ts, sid, player)) for sid, player, ts in starts],
            concurrency=32,
            raise_on_first_error=True,
        )
    finally:
        connection.close()


def _serve(settings: Settings, port: int) -> None:
    connection = CassandraConnection(settings)
    session = connection.session()
    read = session.prepare(READ)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            country = parts.path.split("/")[2].upper()
            hours = int(parse_qs(parts.query)["hours"][0])
            now = datetime.now(UTC)
            rows = session.execute(read, (country, now - timedelta(hours=hours), now))
            body = json.dumps(
                {
                    "country": country,
                    "sessions": [
                        {
                            "session_id": str(row.session_id),
                            "player_id": row.player_id,
                            "ts": format_timestamp(row.ts.replace(tzinfo=UTC)),
                        }
                        for row in rows
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, _format: str, *_args: object) -> None:
            return None

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def start(settings: Settings) -> tuple[BaseProcess, str]:
    """The reference server in a process of its own (as the gateway is); returns it and its base URL."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings, port), daemon=True)
    process.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the seed reference server did not listen within 60 s")


def compare(settings: Settings, expected: ExpectedRows, our_url: str, *, seconds: float) -> RouteStatsPair:
    """Our page of up to 1,000 starts against the seed's unpaged list of the same starts (the biggest country
    with at most 1,000 starts in the last 24 hours), one client each, in turn."""
    since = datetime.now(UTC) - timedelta(hours=24)
    in_day = Counter(country for _, country, ts in expected.starts.values() if ts >= since)
    country = max((c for c, n in in_day.items() if n <= 1000), key=lambda c: in_day[c])
    starts = [
        (sid, player, ts)
        for sid, (player, c, ts) in expected.starts.items()
        if c == country and ts >= since - timedelta(minutes=5)
    ]
    say(
        f"seed comparison: {country}, {in_day[country]} starts in 24 h, page of 1,000 against the unpaged list"
    )
    fill(settings, country, starts)
    process, url = start(settings)
    try:
        return time_pair(
            ours=(our_url, f"/countries/{country}/starts?hours=24&limit=1000"),
            seed=(url, f"/countries/{country}/starts?hours=24"),
            seconds=seconds,
            label=f"{country}, {in_day[country]} starts",
        )
    finally:
        process.terminate()
