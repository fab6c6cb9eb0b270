"""A player's data on request: erase it for good (with a receipt), or hand it over (the export).

What an erasure removes, what it keeps and why: docs/decisions.md ("Privacy") and the README's privacy section.
In short: every row that holds the player's id goes, or loses the id; a start the counts are made of stays
counted, without its player, and no listing shows it again; replays of the player's events stamped before the
erasure are discarded at ingest (domain.ingest) for as long as anything could be retained.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from player_sessions.clock import Clock
from player_sessions.models import (
    CompletedSession,
    ErasureReceipt,
    PlayerWrite,
    SessionHalves,
    WriteKind,
)
from player_sessions.repositories.cache_protocol import ReadCache, country_scope, player_scope
from player_sessions.repositories.protocols import PlayerDataStore
from player_sessions.settings import Settings
from player_sessions.time_buckets import start_shard

SESSIONS_PER_STEP = 250
"""Sessions erased per step: their rows are read, removed, and then their index entries; the time left is
checked between steps, so a step is what a retry may have to redo."""
SECONDS_KEPT_IN_HAND = 3.0
"""An erasure stops before a step when less than this is left of the function's time: the receipt stays in
progress, and asking again resumes it."""


def erase_player(
    player_id: str,
    *,
    store: PlayerDataStore,
    cache: ReadCache,
    clock: Clock,
    settings: Settings,
    seconds_left: Callable[[], float] = lambda: float("inf"),
) -> ErasureReceipt:
    """Erases the player's rows and cache entries; returns the receipt, finished unless time ran out.

    The order makes every crash safe to re-run: the receipt first, then the erasure record (from which moment
    ingest discards the player's earlier events, and removes again any batch that raced with it), then per step
    the sessions' rows and only after them their index entries, then the completed sessions, then the cache.
    What a crash leaves is still in the index or in the player's partitions, and the next erasure finds it.
    """
    player_hash = settings.player_hash(player_id)
    receipt = ErasureReceipt(uuid.uuid4(), player_hash, clock.now())
    ttl = settings.retention_seconds
    store.save_receipt(receipt, ttl)
    previous = store.erasure_record(player_hash)
    store.write_erasure_record(player_hash, receipt.asked_at, receipt.erasure_id, ttl)

    entries = store.player_writes(player_hash)
    completed = store.completed_of(player_id)
    by_session = _by_session(entries, completed, settings.start_shards)
    session_ids = list(by_session)
    for first in range(0, len(session_ids), SESSIONS_PER_STEP):
        if seconds_left() < SECONDS_KEPT_IN_HAND:
            store.save_receipt(receipt, ttl)
            return receipt
        step = session_ids[first : first + SESSIONS_PER_STEP]
        halves = store.read_sessions(step)
        owned = [sid for sid in step if sid in halves and halves[sid].player_id in (None, player_id)]
        # A session started and not ended keeps its start half, without the player: its start stays counted,
        # so an end arriving later must still close it (the sessions online, the session lengths).
        still_open = [sid for sid in owned if halves[sid].start_ts is not None and halves[sid].end_ts is None]
        deleted = [sid for sid in owned if sid not in still_open]
        step_entries = [entry for sid in step for entry in by_session[sid]]
        store.erase_sessions(player_hash, step_entries, deleted, still_open)
        receipt.deleted_rows["sessions"] += len(deleted)
        if still_open:
            receipt.player_id_removed["sessions"] += len(still_open)
        receipt.deleted_rows["player_writes"] += sum(1 for entry in step_entries if entry.ttl_seconds >= 0)
        kinds = Counter(entry.kind for entry in step_entries)
        receipt.player_id_removed["session_starts"] += kinds[WriteKind.START]
        receipt.player_id_removed["start_arrivals"] += kinds[WriteKind.ARRIVAL]
    store.erase_completed(player_id, completed)
    receipt.deleted_rows["completed_sessions_by_player"] += len(completed)
    countries = sorted({entry.country for entry in entries if entry.country} | {s.country for s in completed})
    receipt.cache_keys_deleted = cache.forget(
        [player_scope(player_id), *(country_scope(c) for c in countries)]
    )
    receipt.finished_at = clock.now()
    store.save_receipt(receipt, ttl)
    if previous is not None and previous[1] != receipt.erasure_id:
        earlier = store.read_receipt(previous[1])
        if earlier is not None and not earlier.finished:
            store.save_receipt(replace(earlier, completed_by=receipt.erasure_id), ttl)
    return receipt


def _by_session(
    entries: Sequence[PlayerWrite], completed: Sequence[CompletedSession], shards: int
) -> dict[UUID, list[PlayerWrite]]:
    """The index entries of each session. A completed session without entries (stored before the index
    existed) gets its start's entry from the completed row; such an entry is marked ``ttl_seconds=-1``: it
    points at a start row, but is no entry of the index to delete."""
    by_session: dict[UUID, list[PlayerWrite]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append(entry)
    for session in completed:
        if session.session_id not in by_session:
            shard = start_shard(session.session_id, shards)
            by_session[session.session_id] = [
                PlayerWrite(
                    session.session_id, WriteKind.START, session.start_ts, session.country, 0, shard, -1
                )
            ]
    return by_session


@dataclass(frozen=True)
class ExportedSession:
    session_id: UUID
    halves: SessionHalves | None
    """The session's row, when it is still stored and is the player's."""
    writes: list[PlayerWrite]
    completed: bool
    """Whether it is in the player's completed sessions (their history)."""


@dataclass(frozen=True)
class PlayerExport:
    erased_at: datetime | None
    sessions: list[ExportedSession]
    next_after: UUID | None


def export_player(
    player_id: str, *, store: PlayerDataStore, settings: Settings, after: UUID | None, limit: int
) -> PlayerExport:
    """One page of everything stored about the player: up to ``limit`` sessions, in session id order, after
    the session ``after``; each with its row, what was written for it and whether it is in the history."""
    player_hash = settings.player_hash(player_id)
    entries = store.player_writes(player_hash, after=after, sessions=limit + 1)
    by_session: dict[UUID, list[PlayerWrite]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append(entry)
    session_ids = list(by_session)[:limit]
    next_after = session_ids[-1] if len(by_session) > limit else None
    halves = store.read_sessions(session_ids)
    # A row without a player is the player's end half alone, or a start half an erasure kept for the counts
    # without its player (then the start is no longer theirs to see): only the end half is shown.
    mine = {
        sid: half if half.player_id == player_id else replace(half, country=None, start_ts=None)
        for sid, half in halves.items()
        if half.player_id in (None, player_id)
    }
    completed = store.completed_among(
        player_id, [(sid, half.end_ts) for sid, half in mine.items() if half.end_ts is not None]
    )
    record = store.erasure_record(player_hash)
    return PlayerExport(
        erased_at=record[0] if record else None,
        sessions=[
            ExportedSession(sid, mine.get(sid), by_session[sid], sid in completed) for sid in session_ids
        ],
        next_after=next_after,
    )


class NotAnExportCursorError(ValueError):
    """The text is no cursor an export of this player returned."""


def export_cursor(player_id: str, after: UUID, settings: Settings) -> str:
    """The next page's cursor: the last session id listed, signed for this player with the player hash key, so
    that a cursor is only ever one an export of this player returned (as a country page's cursor is)."""
    return f"{after}.{_cursor_tag(player_id, after, settings)}"


def export_position(cursor: str, player_id: str, settings: Settings) -> UUID:
    """The session id a cursor of ``export_cursor`` continues after; NotAnExportCursorError otherwise."""
    session_text, _, tag = cursor.partition(".")
    try:
        after = UUID(session_text)
    except ValueError:
        raise NotAnExportCursorError(cursor) from None
    if str(after) != session_text or not hmac.compare_digest(tag, _cursor_tag(player_id, after, settings)):
        raise NotAnExportCursorError(cursor)
    return after


def _cursor_tag(player_id: str, after: UUID, settings: Settings) -> str:
    digest = settings.player_hash(f"export cursor\n{player_id}\n{after}")
    return base64.urlsafe_b64encode(digest[:12]).decode()


def retained_until(ts: datetime, retention: timedelta) -> datetime:
    """When a row written for an event stamped ``ts`` expires (its TTL runs to ``ts + retention``)."""
    return ts + retention
