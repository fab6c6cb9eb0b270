"""The privacy phase: players' data exported and erased through the served gateway, signed as administration.

Typical players of the data set (their export, then their erasure), and one heavy player: a year of play,
``heavy_sessions`` completed sessions stored through the ingest path, then exported page by page and erased.
Its timings are wall-clock through the gateway's pool; its rows come from the receipt. It runs last: the players
it erases are gone from every later check.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from player_sessions.bootstrap import Services
from player_sessions.domain.ingest import ingest_batch
from player_sessions_local.bench.options import API_KEY, BATCH_EVENTS, BenchOptions, say
from player_sessions_local.local_auth import Signer
from player_sessions_local.measure.http_client import HttpClient
from player_sessions_local.measure.stats import Latencies

EXPORT_PAGE = 1000
PRIVACY_PLAYERS = 20
"""Players of the data set the privacy phase exports and erases."""


def run_phase(
    options: BenchOptions, url: str, services: Services | None, completed: Iterable[str]
) -> PrivacyResult | None:
    """The phase as the benchmark runs it (None when skipped: ``--privacy-heavy-sessions 0``)."""
    if options.privacy_heavy_sessions <= 0 or services is None:
        return None
    players = sample_players(completed, options.seed + 300)
    return measure_privacy(
        url, services, players, heavy_sessions=options.privacy_heavy_sessions, seed=options.seed + 301
    )


def sample_players(completed: Iterable[str], seed: int) -> list[str]:
    """PRIVACY_PLAYERS of the players with completed sessions, drawn reproducibly."""
    players = sorted(completed)
    return random.Random(seed).sample(players, min(PRIVACY_PLAYERS, len(players)))


@dataclass
class HeavyErasure:
    sessions: int
    export_pages: int = 0
    export_seconds: float = 0.0
    exported_sessions: int = 0
    erasure_requests: int = 0
    """POSTs until the receipt said finished (each stops 3 s before the function's timeout)."""
    erasure_seconds: float = 0.0
    deleted_rows: dict[str, int] = field(default_factory=dict)
    player_id_removed: dict[str, int] = field(default_factory=dict)
    left_after: int = -1
    """Sessions the export and the history still showed afterwards (0 expected)."""


@dataclass
class PrivacyResult:
    exports: Latencies
    erasures: Latencies
    receipts: Latencies
    heavy: HeavyErasure

    @property
    def errors(self) -> int:
        return self.exports.errors + self.erasures.errors + self.receipts.errors

    def targets(self) -> list[tuple[str, bool]]:
        return [
            (
                f"a player with {self.heavy.sessions:,} sessions erased, nothing left",
                self.heavy.left_after == 0 and self.heavy.deleted_rows.get("sessions") == self.heavy.sessions,
            )
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "exports": self.exports.summary(),
            "erasures": self.erasures.summary(),
            "receipts": self.receipts.summary(),
            "heavy": asdict(self.heavy),
            "errors": self.errors,
            "first_error": self.exports.first_error or self.erasures.first_error or self.receipts.first_error,
        }


def measure_privacy(
    url: str, services: Services, players: Sequence[str], *, heavy_sessions: int, seed: int
) -> PrivacyResult:
    admin = HttpClient(url, API_KEY, timeout=60, signer=Signer.ADMIN)
    studio = HttpClient(url, API_KEY, timeout=60)
    result = PrivacyResult(Latencies(), Latencies(), Latencies(), HeavyErasure(heavy_sessions))
    say(f"privacy: {len(players)} players exported then erased, and one with {heavy_sessions:,} sessions")
    try:
        for player in players:
            _timed(result.exports, admin, "GET", f"/players/{player}/export?limit={EXPORT_PAGE}", 200)
            receipt = _timed(result.erasures, admin, "POST", f"/players/{player}/erasure", 202)
            if receipt is not None:
                _timed(result.receipts, admin, "GET", f"/erasures/{receipt['erasure_id']}", 200)
        player = f"bench-heavy-{random.Random(seed).getrandbits(64):016x}"
        _store_a_year_of_play(services, player, heavy_sessions)
        _export_and_erase(result.heavy, admin, studio, player)
    finally:
        admin.close()
        studio.close()
    heavy = result.heavy
    say(
        f"  heavy player: export {heavy.exported_sessions:,} sessions in {heavy.export_pages} pages, "
        f"{heavy.export_seconds:.1f} s; erasure {heavy.erasure_seconds:.1f} s in {heavy.erasure_requests} "
        f"request(s); left afterwards {heavy.left_after}"
    )
    return result


def _timed(into: Latencies, client: HttpClient, method: str, path: str, want: int) -> Any:
    """The answer's JSON, its time recorded; None (an error recorded) when the status is not ``want``."""
    started = time.perf_counter()
    status, body = client.request(method, path, b"" if method == "POST" else None)
    if status != want:
        into.add_error(f"{method} {path}: {status} {body[:200]!r}")
        return None
    into.latencies_ms.append((time.perf_counter() - started) * 1000)
    return json.loads(body)


def _store_a_year_of_play(services: Services, player: str, sessions: int) -> None:
    """The player's sessions through the ingest path (in process, as the loader stores): spread over the
    retention (up to 360 days), each 20 minutes long."""
    now = datetime.now(UTC)
    step = timedelta(days=min(360, services.settings.retention_days - 1)) / max(1, sessions)
    events: list[dict[str, Any]] = []
    for n in range(sessions):
        start = now - timedelta(minutes=30) - step * n
        sid = str(uuid.uuid4())
        events += [
            {
                "event": "start",
                "player_id": player,
                "session_id": sid,
                "country": "FI",
                "ts": start.isoformat(),
            },
            {
                "event": "end",
                "player_id": player,
                "session_id": sid,
                "ts": (start + timedelta(minutes=20)).isoformat(),
            },
        ]
    for first in range(0, len(events), BATCH_EVENTS):
        ingest_batch(
            events[first : first + BATCH_EVENTS],
            store=services.sessions,
            clock=services.clock,
            settings=services.settings,
            cache=services.cache,
        )


def _export_and_erase(heavy: HeavyErasure, admin: HttpClient, studio: HttpClient, player: str) -> None:
    started, cursor = time.perf_counter(), None
    while True:
        page = admin.get_json(
            f"/players/{player}/export?limit={EXPORT_PAGE}" + (f"&cursor={cursor}" if cursor else "")
        )
        heavy.export_pages += 1
        heavy.exported_sessions += len(page["sessions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    heavy.export_seconds = time.perf_counter() - started
    started = time.perf_counter()
    while heavy.erasure_requests < 20:
        heavy.erasure_requests += 1
        status, body = admin.request("POST", f"/players/{player}/erasure", b"")
        if status != 202:
            raise RuntimeError(f"erasure: HTTP {status} {body[:300]!r}")
        receipt = json.loads(body)
        for name, rows in receipt["stores"]["cassandra"]["deleted_rows"].items():
            heavy.deleted_rows[name] = heavy.deleted_rows.get(name, 0) + rows
        for name, rows in receipt["stores"]["cassandra"]["player_id_removed"].items():
            heavy.player_id_removed[name] = heavy.player_id_removed.get(name, 0) + rows
        if receipt["status"] == "finished":
            break
    heavy.erasure_seconds = time.perf_counter() - started
    left = admin.get_json(f"/players/{player}/export?limit=10")["sessions"]
    history = studio.get_json(f"/players/{player}/sessions")["sessions"]
    heavy.left_after = len(left) + len(history)


def privacy_section(result: PrivacyResult | None) -> list[str]:
    if result is None:
        return []
    heavy = result.heavy
    rows = ", ".join(f"{name} {count:,}" for name, count in sorted(heavy.deleted_rows.items()))
    kept = ", ".join(f"{name} {count:,}" for name, count in sorted(heavy.player_id_removed.items()))
    return [
        "## A player's data on request",
        "",
        (
            f"Through the cached configuration's gateway, signed as administration. {len(result.exports.latencies_ms)} "
            f"players of the data set: export p50 {result.exports.percentile(0.5):.0f} ms, p90 "
            f"{result.exports.percentile(0.9):.0f} ms; erasure p50 {result.erasures.percentile(0.5):.0f} ms, p90 "
            f"{result.erasures.percentile(0.9):.0f} ms; receipt p50 {result.receipts.percentile(0.5):.0f} ms; "
            f"{result.errors} errors."
        ),
        "",
        (
            f"A heavy player, {heavy.sessions:,} completed sessions over the retention (up to 360 days): exported in "
            f"{heavy.export_pages} pages of up to {EXPORT_PAGE} sessions in {heavy.export_seconds:.1f} s; erased in "
            f"**{heavy.erasure_seconds:.1f} s** ({heavy.erasure_requests} request(s)). Rows deleted: {rows}; "
            f"player id removed (starts kept for the counts): {kept}. Sessions shown afterwards: {heavy.left_after}."
        ),
        "",
    ]
