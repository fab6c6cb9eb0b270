"""The data set: the generated events, and what they must leave in each table."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from player_sessions.domain.completion import ended_records
from player_sessions.models import (
    EventType,
    PlayerWrite,
    SessionHalves,
    WriteKind,
    format_timestamp,
    from_epoch_ms,
    parse_event,
)
from player_sessions.repositories.cassandra_store import WRITE_ARRIVAL_MINUTE, WRITE_COMPLETED
from player_sessions.repositories.cql import Cql
from player_sessions.repositories.player_rows import WRITE_PLAYER_WRITE, player_write_key
from player_sessions.repositories.session_rows import (
    WRITE_ARRIVAL,
    WRITE_END_HALF,
    WRITE_RECORD,
    WRITE_START_HALF,
    WRITE_START_ROW,
)
from player_sessions.retention import ttl_seconds
from player_sessions.schema import FAMILIES
from player_sessions.settings import Settings
from player_sessions.time_buckets import Level, hour_of, slot_of, slot_start, start_shard
from player_sessions_local.event_files import open_for_reading, open_for_writing


@dataclass
class ExpectedRows:
    """The rows the ingest path must store for a sequence of events (all valid and retained here)."""

    lines: int = 0
    starts: dict[uuid.UUID, tuple[str, str, datetime]] = field(default_factory=dict)
    """Each start's player, country and ts: one session_starts row per session."""
    ends: dict[uuid.UUID, datetime] = field(default_factory=dict)
    completed: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    """Per player, the sessions whose start and end are both there (the end not before the start)."""

    @property
    def starts_by_country(self) -> Counter[str]:
        return Counter(country for _, country, _ in self.starts.values())

    @property
    def completed_count(self) -> int:
        return sum(len(sessions) for sessions in self.completed.values())

    def sessions(self) -> set[uuid.UUID]:
        return set(self.starts) | set(self.ends)


Statement = tuple[Cql, tuple[Any, ...]]


def expected_rows(
    events: Iterable[dict], now: datetime, settings: Settings, statements: list[Statement] | None = None
) -> ExpectedRows:
    """What the events must leave stored; with ``statements``, also appends the writes the ingest path makes
    for them (the bare loop's work), computed with the domain's own parsing and TTL rules: each start's
    arrival too (into the slot of ``now``), each completed session's records for the live-ops counts, and each
    family's minute once."""
    expected = ExpectedRows()
    slot = slot_of(now)
    if statements is not None:
        minute = Level.MINUTE.floor(slot_start(slot))
        statements += [
            (WRITE_ARRIVAL_MINUTE, (family.arrival_scope, minute, settings.retention_seconds))
            for family in FAMILIES
        ]
    for raw in events:
        expected.lines += 1
        event = parse_event(raw)
        ttl = ttl_seconds(event.ts, now, settings.retention)
        session_id = event.session_id
        if event.event is EventType.START:
            assert event.country is not None
            expected.starts.setdefault(session_id, (event.player_id, event.country, event.ts))
            if statements is not None:
                statements.append(
                    (WRITE_START_HALF, (ttl, event.player_id, event.country, event.ts, session_id))
                )
                shard = start_shard(session_id, settings.start_shards)
                statements.append(
                    (
                        WRITE_START_ROW,
                        (hour_of(event.ts), shard, event.country, event.ts, session_id, event.player_id, ttl),
                    )
                )
                statements.append(
                    (WRITE_ARRIVAL, (slot, shard, session_id, event.ts, event.country, event.player_id, ttl))
                )
                statements += _index_writes(
                    settings.player_hash(event.player_id),
                    PlayerWrite(session_id, WriteKind.START, event.ts, event.country, 0, shard, ttl),
                    PlayerWrite(session_id, WriteKind.ARRIVAL, event.ts, event.country, slot, shard, ttl),
                )
        else:
            expected.ends.setdefault(session_id, event.ts)
            if statements is not None:
                statements.append((WRITE_END_HALF, (ttl, event.ts, session_id)))
                statements += _index_writes(
                    settings.player_hash(event.player_id),
                    PlayerWrite(session_id, WriteKind.END, event.ts, "", 0, 0, ttl),
                )
        start, end_ts = expected.starts.get(session_id), expected.ends.get(session_id)
        if statements is not None and start is not None and end_ts is not None:
            halves = SessionHalves(session_id, start[0], start[1], start[2], end_ts)
            statements += [
                (WRITE_RECORD[r.family], (slot, r.shard, key.session_id, key.ts, key.country, r.ttl_seconds))
                for r in ended_records([halves], now, settings)
                for key in (r.arrival.key,)
            ]
        if start is not None and end_ts is not None and end_ts >= start[2]:
            player, country, start_ts = start
            completed = expected.completed.setdefault(player, set())
            if session_id not in completed:
                completed.add(session_id)
                if statements is not None:
                    statements.append(
                        (
                            WRITE_COMPLETED,
                            (
                                player,
                                end_ts,
                                session_id,
                                start_ts,
                                country,
                                ttl_seconds(start_ts, now, settings.retention),
                            ),
                        )
                    )
    return expected


def _index_writes(player_hash: bytes, *entries: PlayerWrite) -> list[Statement]:
    """The player's index entries an event writes (repositories.player_rows)."""
    return [
        (WRITE_PLAYER_WRITE, (*player_write_key(player_hash, entry), entry.shard, entry.ttl_seconds))
        for entry in entries
    ]


def read_events(path: Path, limit: int | None = None) -> Iterator[dict]:
    with open_for_reading(path) as lines:
        for line in itertools.islice(lines, limit):
            yield json.loads(line)


BULK_CLOSED_EVERY = 10
"""In the live scenario's bulk, nine sessions in ten are ended too (each end between its start and now); the
tenth stays open."""


def bulk_sessions(
    count: int, span_seconds: int, countries: Counter[str], rng: random.Random, path: Path
) -> tuple[set[tuple[str, datetime, str]], dict[str, datetime]]:
    """``count`` sessions started within the last ``span_seconds``, nine in ten of them ended, written to a file
    for the loader: the starts as (session id, ts, country) and the ends by session id."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    names, weights = list(countries), list(countries.values())
    starts: set[tuple[str, datetime, str]] = set()
    ends: dict[str, datetime] = {}
    with open_for_writing(path) as out:
        for number in range(count):
            # New on every run, not drawn from the seed: a seeded id posted again by a later run, with
            # other timestamps, would be a second start of a stored session (rejected: domain.session_identity)
            session_id = str(uuid.uuid4())
            player, country = uuid.UUID(int=rng.getrandbits(128)).hex, rng.choices(names, weights)[0]
            start_ms = now_ms - rng.randrange(span_seconds * 1000)
            starts.add((session_id, from_epoch_ms(start_ms), country))
            halves = [("start", start_ms, {"country": country})]
            if number % BULK_CLOSED_EVERY:
                end_ms = rng.randint(start_ms, now_ms)
                ends[session_id] = from_epoch_ms(end_ms)
                halves.append(("end", end_ms, {}))
            for event, ms, more in halves:
                line = {"event": event, "player_id": player, "session_id": session_id, **more}
                out.write(json.dumps({**line, "ts": format_timestamp(from_epoch_ms(ms))}) + "\n")
    return starts, ends
