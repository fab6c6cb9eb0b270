"""A soak: minutes of mixed traffic at a steady rate through the local gateway, then a check that nothing
acknowledged is missing (not part of `make test`; see docs/faults.md for the last result).

    python -m player_sessions_local.soak [--minutes 10] [--rate 20] [--base-url http://127.0.0.1:3000]

Every ``1/rate`` seconds one request goes out (at most ``--clients`` in flight: `make serve`'s pool runs each in
an execution environment of its own, up to its maximum concurrency; past it the gateway answers 429, and the
request is sent again after its Retry-After, counted in the 429s column), in a fixed mix: 4 in 10 ingest a batch of
8 to 10 events (whole sessions, starts whose end comes in a later batch, those later ends, and a re-sent
event), 3 read a player's sessions, 1 counts the starts per country over 1, 24, 168 or 8760 hours, 1 lists a
country's starts, 1 asks for /health. Every start goes to a country code that held no start
in the last 8760 hours when the soak began, so that afterwards it can check exactly:

- the count of that country equals the acknowledged starts, and its listing holds every one of them;
- each player's sessions are exactly its completed sessions (both halves acknowledged), newest end first.

It prints the requests, errors and p50/p90/p99 per route and the checks; the exit status is 1 on any error or
mismatch. Only a loopback base URL is accepted: this is a local tool.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import itertools
import json
import os
import random
import string
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from urllib.parse import urlencode, urlsplit

from player_sessions.routes import STUDIO_EVENTS_PATH
from player_sessions_local.measure.http_client import HttpClient
from player_sessions_local.measure.stats import Latencies

MIX = ("ingest",) * 4 + ("player",) * 3 + ("count", "list", "health")
SESSIONS_PER_PLAYER = 12
"""Fewer than the 20 a player's history shows, so every completed session can be checked."""
WINDOWS_HOURS = (1, 24, 168, 8760)
MAX_MINUTES = 24 * 60
REQUEST_TIMEOUT_SECONDS = 30
THROTTLE_ATTEMPTS = 5
THROTTLE_PAUSE_SECONDS = 1.0
"""The Retry-After of the local gateway's 429 (player_sessions_local.gateway.answers)."""


@dataclass
class Session:
    session_id: str
    player_id: str
    start: datetime
    end: datetime
    start_acked: bool = False
    end_acked: bool = False


@dataclass
class RouteStats(Latencies):
    """A route's latencies, and every failure (the soak lists them all)."""

    failures: list[str] = field(default_factory=list)
    throttled: int = 0
    """429 answers, each sent again after its Retry-After (a throttle is the gateway's answer to overload,
    not a failure; one that persists past THROTTLE_ATTEMPTS is)."""


class Traffic:
    """The soak's sessions and the batches that carry them; built on the scheduling thread only."""

    def __init__(self, country: str, rng: random.Random) -> None:
        self.country = country
        self._rng = rng
        self.sessions: dict[str, Session] = {}
        self._open: list[Session] = []
        """Sessions whose start was sent and whose end was not yet."""
        self._sent: list[dict] = []
        self.players: list[str] = []
        self._player_sessions = SESSIONS_PER_PLAYER

    def _new_session(self) -> Session:
        if self._player_sessions == SESSIONS_PER_PLAYER:
            self.players.append(f"soak-{uuid.uuid4().hex}")
            self._player, self._player_sessions = self.players[-1], 0
        self._player_sessions += 1
        now = datetime.now(UTC)
        start = now - timedelta(seconds=self._rng.randint(60, 1800))
        end = start + timedelta(seconds=self._rng.randint(1, 59))
        session = Session(str(uuid.uuid4()), self._player, start, end)
        self.sessions[session.session_id] = session
        return session

    def batch(self) -> list[dict]:
        """Two whole sessions, two starts whose ends come later, up to three such ends, one re-sent event."""
        events = []
        for _ in range(2):
            session = self._new_session()
            events += [self._start(session), self._end(session)]
        for _ in range(2):
            session = self._new_session()
            events.append(self._start(session))
            self._open.append(session)
        for _ in range(min(3, len(self._open) - 2)):
            events.append(self._end(self._open.pop(0)))
        if self._sent:
            events.append(self._rng.choice(self._sent))
        self._sent = events[:]
        return events

    def _start(self, session: Session) -> dict:
        return {
            "event": "start",
            "player_id": session.player_id,
            "session_id": session.session_id,
            "country": self.country,
            "ts": session.start.isoformat(),
        }

    @staticmethod
    def _end(session: Session) -> dict:
        return {
            "event": "end",
            "player_id": session.player_id,
            "session_id": session.session_id,
            "ts": session.end.isoformat(),
        }

    def known_player(self) -> str:
        """One of the latest players, whose history is still changing."""
        return self._rng.choice(self.players[-50:]) if self.players else "nobody"


class Soak:
    def __init__(
        self, base_url: str, api_key: str | None, *, rate: float, clients: int, country: str, seed: int
    ) -> None:
        self._base_url, self._api_key = base_url, api_key
        self._interval = 1.0 / rate
        self._clients = clients
        self._rng = random.Random(seed)
        self.traffic = Traffic(country, self._rng)
        self.stats: dict[str, RouteStats] = defaultdict(RouteStats)
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(clients)
        self._local = threading.local()
        self.late_sends = 0

    def run(self, seconds: float) -> float:
        """Sends the mix at the steady rate for ``seconds``; returns the achieved rate."""
        mix = itertools.cycle(MIX)
        started = time.monotonic()
        deadline, next_at, sent = started + seconds, started, 0
        with ThreadPoolExecutor(max_workers=self._clients) as pool:
            while next_at < deadline:
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -self._interval:
                    self.late_sends += 1
                self._in_flight.acquire()
                pool.submit(self._send, *self._request(next(mix)))
                sent += 1
                next_at += self._interval
        return sent / (time.monotonic() - started)

    def _request(self, kind: str) -> tuple[str, str, str, list[dict] | None]:
        if kind == "ingest":
            return "POST /events", "POST", STUDIO_EVENTS_PATH, self.traffic.batch()
        if kind == "player":
            player = self.traffic.known_player()
            return "GET /players/{id}/sessions", "GET", f"/players/{player}/sessions", None
        if kind == "count":
            hours = self._rng.choice(WINDOWS_HOURS)
            return "GET /countries/starts", "GET", f"/countries/starts?hours={hours}", None
        if kind == "list":
            country = self._rng.choice((self.traffic.country, "US", "DE", "FI"))
            return "GET /countries/{c}/starts", "GET", f"/countries/{country}/starts?hours=1&limit=100", None
        return "GET /health", "GET", "/health", None

    def _client(self) -> HttpClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = HttpClient(self._base_url, self._api_key, REQUEST_TIMEOUT_SECONDS)
        return client

    def _send(self, route: str, method: str, path: str, batch: list[dict] | None) -> None:
        try:
            started = time.perf_counter()
            try:
                body = json.dumps(batch).encode() if batch is not None else None
                status, answer = self._client().request(method, path, body)
                for _ in range(THROTTLE_ATTEMPTS - 1):
                    if status != HTTPStatus.TOO_MANY_REQUESTS:
                        break
                    with self._lock:
                        self.stats[route].throttled += 1
                    time.sleep(THROTTLE_PAUSE_SECONDS)
                    status, answer = self._client().request(method, path, body)
                problem = None
                if status != 200:
                    problem = f"{status} {answer[:200]!r}"
                elif batch is not None and json.loads(answer)["stored"] != len(batch):
                    problem = f"not every event stored: {answer[:300]!r}"
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}: {error}"
            elapsed_ms = (time.perf_counter() - started) * 1000
            with self._lock:
                self.stats[route].latencies_ms.append(elapsed_ms)
                if problem:
                    self.stats[route].failures.append(f"{method} {path}: {problem}")
                elif batch is not None:
                    self._acknowledge(batch)
        finally:
            self._in_flight.release()

    def _acknowledge(self, batch: list[dict]) -> None:
        for event in batch:
            session = self.traffic.sessions[event["session_id"]]
            if event["event"] == "start":
                session.start_acked = True
            else:
                session.end_acked = True


def verify(client: HttpClient, traffic: Traffic, window_hours: int) -> list[str]:
    """Every acknowledged start counted and listed; every player's sessions exactly its completed ones."""
    problems = []
    acked_starts = {s.session_id for s in traffic.sessions.values() if s.start_acked}
    counts = client.get_json(f"/countries/starts?hours={window_hours}")["countries"]
    counted = {c["country"]: c["starts"] for c in counts}.get(traffic.country, 0)
    listed = list_starts(client, traffic.country, window_hours)
    print(f"starts acknowledged {len(acked_starts)}, counted {counted}, listed {len(listed)}")
    if counted != len(acked_starts):
        problems.append(f"{traffic.country} counts {counted} starts, {len(acked_starts)} were acknowledged")
    if listed != acked_starts:
        problems.append(
            f"listing: {len(acked_starts - listed)} acknowledged starts missing, "
            f"{len(listed - acked_starts)} unexpected"
        )
    by_player: dict[str, list[Session]] = defaultdict(list)
    for session in traffic.sessions.values():
        if session.start_acked and session.end_acked:
            by_player[session.player_id].append(session)
    players = traffic.players
    wrong = 0
    for player in players:
        expected = [
            s.session_id for s in sorted(by_player[player], key=lambda s: (s.end, s.session_id), reverse=True)
        ]
        got = [s["session_id"] for s in client.get_json(f"/players/{player}/sessions")["sessions"]]
        if sorted(got) != sorted(expected):
            wrong += 1
            if wrong <= 5:
                problems.append(f"player {player}: {len(got)} sessions listed, {len(expected)} completed")
    print(
        f"completed sessions {sum(map(len, by_player.values()))} of {len(players)} players, "
        f"players with a wrong history {wrong}"
    )
    if wrong > 5:
        problems.append(f"... {wrong} players in all have a wrong history")
    return problems


def list_starts(client: HttpClient, country: str, hours: int) -> set[str]:
    found: set[str] = set()
    cursor = None
    for _ in range(10_000):
        query = urlencode({"hours": hours, "limit": 1000, **({"cursor": cursor} if cursor else {})})
        page = client.get_json(f"/countries/{country}/starts?{query}")
        found.update(s["session_id"] for s in page["sessions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return found


def unused_country(client: HttpClient, rng: random.Random) -> str:
    """A code with no start in the last 8760 hours: the user-assigned X? range first, then any two letters."""
    used = {c["country"] for c in client.get_json("/countries/starts?hours=8760")["countries"]}
    candidates = [f"X{letter}" for letter in string.ascii_uppercase]
    candidates += ["".join(pair) for pair in itertools.product(string.ascii_uppercase, repeat=2)]
    free = [code for code in dict.fromkeys(candidates) if code not in used]
    if not free:
        raise SystemExit("every two-letter country code already has starts; use a fresh keyspace")
    return free[0] if free[0].startswith("X") else rng.choice(free)


def require_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"the soak only talks to a local gateway; {base_url} is not a loopback address")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    parser.add_argument("--api-key", default=os.environ.get("PLAYER_SESSIONS_API_KEY"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, all routes together")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    require_loopback(args.base_url)
    if not 0 < args.minutes <= MAX_MINUTES or not 0 < args.rate <= 1000 or not 1 <= args.clients <= 64:
        parser.error(f"--minutes in (0, {MAX_MINUTES}], --rate in (0, 1000], --clients in [1, 64]")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    # A long timeout: the first count over a year may fold a long tail.
    with HttpClient(args.base_url, args.api_key, timeout=300) as client:
        country = unused_country(client, random.Random(seed))
        print(
            f"soak: {args.minutes:g} min at {args.rate:g} requests/s against {args.base_url}, "
            f"starts in {country}, seed {seed}",
            flush=True,
        )
        soak = Soak(
            args.base_url, args.api_key, rate=args.rate, clients=args.clients, country=country, seed=seed
        )
        started = datetime.now(UTC)
        achieved = soak.run(args.minutes * 60)
        print(f"sent at {achieved:.2f} requests/s (late sends: {soak.late_sends})")
        print(
            f"{'route':30} {'requests':>9} {'errors':>7} {'429s':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        )
        for route, stats in sorted(soak.stats.items()):
            p50, p90, p99 = (stats.percentile(fraction) for fraction in (0.5, 0.9, 0.99))
            print(
                f"{route:30} {len(stats.latencies_ms):>9} {len(stats.failures):>7} {stats.throttled:>6} "
                f"{p50:>8.1f} {p90:>8.1f} {p99:>8.1f}"
            )
        errors = [error for stats in soak.stats.values() for error in stats.failures]
        for error in errors[:10]:
            print(f"  error: {error}")
        window = int((datetime.now(UTC) - started).total_seconds() // 3600) + 2
        problems = verify(client, soak.traffic, window)
    for problem in problems:
        print(f"  mismatch: {problem}")
    verdict = "PASS" if not errors and not problems else "FAIL"
    requests = sum(len(s.latencies_ms) for s in soak.stats.values())
    print(f"{verdict}: {requests} requests, {len(errors)} errors, {len(problems)} mismatches")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
