"""A cached entry that does not decode (another release's format, a corrupted value) is a miss: the answer is
read from the database, exactly as without the entry, and never a 5xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.settings import Settings
from tests.fakes import InMemoryReadCache, InMemorySessionStore, InMemoryStartsStore

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
PLAYER = "p-cache"
SETTINGS = Settings()
UNREADABLE = [
    b"",
    b"not json",
    b"[1, 2",
    b'{"rows": 7}',
    b"[[1, 2, 3]]",
    b'{"counts": {}, "inclusion": 5}',
    b"\xff",
]


def stored_sessions() -> tuple[InMemoryStartsStore, FixedClock]:
    """Three hours of completed sessions of one player in two countries, folded into the rollups."""
    sessions = InMemorySessionStore()
    starts = InMemoryStartsStore(sessions)
    clock = FixedClock(T0)
    for minute in range(0, 180, 7):
        clock.moment = T0 + timedelta(minutes=minute)
        session_id = str(uuid.uuid4())
        batch = [
            {
                "event": "start",
                "player_id": PLAYER,
                "session_id": session_id,
                "country": "DE" if minute % 2 else "SE",
                "ts": (clock.moment - timedelta(minutes=5)).isoformat(),
            },
            {"event": "end", "player_id": PLAYER, "session_id": session_id, "ts": clock.moment.isoformat()},
        ]
        assert ingest_batch(batch, store=sessions, clock=clock, settings=SETTINGS).stored == 2
    clock.moment = T0 + timedelta(hours=3, minutes=30)
    RollupBuilder(starts, clock, SETTINGS).fold_every_part(max_slots=100_000)
    return starts, clock


def answers(starts: InMemoryStartsStore, clock: FixedClock, cache: InMemoryReadCache) -> tuple:
    history = last_completed_sessions(
        PLAYER, 20, store=InMemorySessionStore(starts.db), clock=clock, settings=SETTINGS, cache=cache
    )
    counts = CountryStarts(starts, clock, SETTINGS, cache).counts(24)
    page = CountryStarts(starts, clock, SETTINGS, cache).page("DE", 24, limit=5)
    return [s.session_id for s in history], dict(counts.counts), [r.session_id for r in page.starts]


def test_every_cached_entry_unreadable_is_a_miss_and_the_answers_do_not_change():
    starts, clock = stored_sessions()
    uncached = answers(starts, clock, InMemoryReadCache())
    for garbage in UNREADABLE:
        # Given a cache whose every entry (history, coarse counts, page) was replaced by bytes that do not decode
        cache = InMemoryReadCache()
        answers(starts, clock, cache)
        assert len(cache.values) == 3
        cache.values = dict.fromkeys(cache.values, garbage)
        # When the three reads are made again
        again = answers(starts, clock, cache)
        # Then each found its entry, treated it as a miss, and answered as without a cache (and stored it anew)
        assert cache.hits == 3, garbage
        assert again == uncached, garbage
        assert garbage not in cache.values.values()
    assert len(uncached[0]) == 20 and sum(uncached[1].values()) == 26 and len(uncached[2]) == 5
