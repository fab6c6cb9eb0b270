"""Ingest a batch: validate each event on its own, store the valid ones, complete the sessions they finish."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

from player_sessions.clock import Clock
from player_sessions.domain.completion import ARRIVAL_TTL_SECONDS, completed_session, ended_records
from player_sessions.domain.country_starts.seen import seen_before_storing
from player_sessions.domain.session_identity import consistent_events
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import (
    Arrival,
    ArrivalWrite,
    CompletedSession,
    EventType,
    EventWrite,
    InvalidEventError,
    RecordWrite,
    Seen,
    SessionHalves,
    StartKey,
    StoredBefore,
    format_timestamp,
    parse_event,
)
from player_sessions.repositories.cache_protocol import NoCache, ReadCache, country_scope, player_scope
from player_sessions.repositories.protocols import SessionStore, StartsStore
from player_sessions.retention import ttl_seconds
from player_sessions.settings import Settings
from player_sessions.time_buckets import arrival_slot, hour_of, may_have_been_folded, start_shard


@dataclass(frozen=True)
class EventProblem:
    index: int
    status: Literal["rejected", "discarded"]
    field: str
    reason: str


@dataclass
class BatchOutcome:
    stored: int = 0
    discarded: int = 0
    rejected: int = 0
    problems: list[EventProblem] = field(default_factory=list)
    completed_sessions: int = 0

    def reject(self, index: int, field_name: str, reason: str) -> None:
        self.rejected += 1
        self.problems.append(EventProblem(index, "rejected", field_name, reason))

    def discard(self, index: int, field_name: str, reason: str) -> None:
        self.discarded += 1
        self.problems.append(EventProblem(index, "discarded", field_name, reason))


MAX_ARRIVAL_ATTEMPTS = 3
"""How often an arrival is written again into a newer slot when its write was acknowledged too late for the
slot it went into (each attempt would have to take seconds): then the batch fails with 503, safe to re-send."""


NOT_THE_SIGNED_IN_PLAYER = (
    "player_id: not the signed-in player (a game client's token allows its own player's events only)"
)


def ingest_batch(
    items: Sequence[Any],
    *,
    store: SessionStore,
    clock: Clock,
    settings: Settings,
    cache: ReadCache | None = None,
    signed_in_player: str | None = None,
    counted: StartsStore | None = None,
) -> BatchOutcome:
    """Stores every valid, retained event of the batch; returns what happened to each one.

    ``signed_in_player``: the player a game client's token proves; an event for anyone else is rejected (the
    studio's signed servers post for any player and give None).

    ``counted``: where the starts' marks are read before the arrivals are written (after the builders'
    watermarks, which ``store`` reads with the batch's sessions), and stored with them, so that readers need not
    read the marks (domain.country_starts.seen); None: neither is read.

    Returns only after every write is acknowledged; a storage failure raises before anything is reported
    stored, and re-sending the whole batch is safe (all writes are idempotent).
    """
    now = clock.now()
    outcome = BatchOutcome()
    indexes, writes = _retained_writes(items, now, settings, signed_in_player, outcome)
    parts = (
        settings.partition.all_parts
        if counted is not None and any(w.event.event is EventType.START for w in writes)
        else []
    )
    before = StoredBefore({}, {}, {})
    if writes:
        # One round: the erasure records, the sessions, the builders' watermarks (all read before any write).
        before = store.read_before_writing(
            sorted({w.player_hash for w in writes}), _session_ids(writes), parts
        )
        indexes, writes = _without_erased_players(indexes, writes, outcome, before.erased)
    known: dict[UUID, SessionHalves] = {}
    if writes:
        agreed = consistent_events(indexes, writes, before.sessions)
        indexes, writes, known = agreed.indexes, agreed.writes, agreed.sessions
        for index, reason in agreed.rejected:
            outcome.reject(index, "session_id", reason)
        outcome.problems.sort(key=lambda problem: problem.index)
    if writes:
        starts = [w for w in writes if w.event.event is EventType.START]
        # Each start's arrival goes out with its start row; the builder only counts starts whose row is
        # stored, so a batch that fails half way leaves nothing counted that is not listed.
        seen = (
            seen_before_storing(counted, [start_key(w) for w in starts], parts, before.watermarks)
            if counted is not None
            else {}
        )
        arrivals = arrivals_of(starts, clock.now(), seen)
        store.write_events(writes, arrivals)
        arrivals = _rewrite_acknowledged_late(arrivals, write=store.write_arrivals, clock=clock)
        writes, starts, erased = _undo_if_erased_meanwhile(
            indexes, writes, arrivals, outcome, store=store, clock=clock
        )
    if writes:
        # A session whose halves are both known now (stored before, or in this batch) needs no read; the others
        # are read again after the writes: a batch storing the other half meanwhile is seen by this read or
        # sees this batch's half in its own.
        session_ids = _session_ids(writes)
        sessions = {
            session_id: halves
            for session_id in session_ids
            if (halves := known[session_id]).start_ts is not None and halves.end_ts is not None
        }
        unknown = [session_id for session_id in session_ids if session_id not in sessions]
        sessions.update(store.read_sessions(unknown) if unknown else {})
        hash_of = _player_hashes(writes, settings)
        ended = [
            h for halves in sessions.values() if (h := completed_session(halves, now, settings.retention))
        ]
        # (an end stamped after its player's erasure, met while the erasure runs, finds the start half still
        # naming the player: the start is erased data, so no history row names it)
        erased_starts = _started_by_erased_players(ended, erased, hash_of)
        completed = [
            (session, ttl_seconds(session.start_ts, now, settings.retention))
            for session in ended
            if session not in erased_starts
        ]
        # With them, the live-ops counts' records of every session with both halves now stored (re-sent ones
        # again: the builder counts each record once), after the halves are acknowledged.
        records = ended_records(sessions.values(), clock.now(), settings)
        store.write_completed(completed, records)
        _rewrite_acknowledged_late(records, write=store.write_records, clock=clock)
        history, erased_meanwhile = _history_unless_erased_meanwhile(
            [s for s, _ in completed], store=store, hash_of=hash_of
        )
        # Only now, with every write acknowledged, may cached answers be invalidated (see cache_protocol). A
        # history read between a row's write and its deletion may have cached it: the player's entries are
        # deleted, as the erasure deletes them (a generation bump would leave a key naming them).
        cache = cache or NoCache()
        cache.invalidate(changed_cache_scopes(starts, history))
        if erased_meanwhile:
            cache.forget(sorted({player_scope(s.player_id) for s in erased_meanwhile}))
        outcome.stored = len(writes)
        outcome.completed_sessions = len(history)
    return outcome


def _retained_writes(
    items: Sequence[Any],
    now: datetime,
    settings: Settings,
    signed_in_player: str | None,
    outcome: BatchOutcome,
) -> tuple[list[int], list[EventWrite]]:
    """Each valid event within the retention, ready to write, with its index in the batch; the others are
    reported rejected or discarded in ``outcome``."""
    writes: list[EventWrite] = []
    indexes: list[int] = []
    for index, item in enumerate(items):
        try:
            event = parse_event(item)
        except InvalidEventError as error:
            outcome.reject(index, error.field, error.reason)
            continue
        if signed_in_player is not None and event.player_id != signed_in_player:
            outcome.reject(index, "player_id", NOT_THE_SIGNED_IN_PLAYER)
            continue
        if event.ts > now + settings.clock_skew:
            outcome.reject(
                index,
                "ts",
                f"ts: more than {settings.clock_skew_seconds} s in the future (server time is "
                f"{format_timestamp(now)})",
            )
            continue
        ttl = ttl_seconds(event.ts, now, settings.retention)
        if ttl <= 0:
            outcome.discard(index, "ts", f"ts: older than the {settings.retention_days}-day retention")
            continue
        indexes.append(index)
        writes.append(
            EventWrite(
                event,
                ttl,
                hour_of(event.ts),
                start_shard(event.session_id, settings.start_shards),
                settings.player_hash(event.player_id),
            )
        )

    return indexes, writes


def arrivals_of(
    starts: Sequence[EventWrite], now: datetime, seen: Mapping[StartKey, Seen] | None = None
) -> list[ArrivalWrite]:
    seen = seen or {}
    return [
        ArrivalWrite(
            Arrival(arrival_slot(w.event.ts, now), key := start_key(w), seen.get(key)),
            w.shard,
            min(w.ttl_seconds, ARRIVAL_TTL_SECONDS),
            w.event.player_id,
            w.player_hash,
        )
        for w in starts
    ]


def erased_reason(erased_at: datetime) -> str:
    return (
        f"player_id: the player's data was erased at {format_timestamp(erased_at)}; their events stamped "
        "before then are discarded (a replay never brings erased data back)"
    )


def _erased_events(
    indexes: list[int], writes: list[EventWrite], erased: dict[bytes, datetime], outcome: BatchOutcome
) -> tuple[list[int], list[EventWrite], list[EventWrite]]:
    """Splits the writes into those kept and those of erased players stamped up to their erasure, which are
    reported discarded: (indexes kept, writes kept, writes discarded)."""
    kept_indexes: list[int] = []
    kept: list[EventWrite] = []
    removed: list[EventWrite] = []
    for index, write in zip(indexes, writes, strict=True):
        erased_at = erased.get(write.player_hash)
        if erased_at is not None and write.event.ts <= erased_at:
            removed.append(write)
            outcome.discard(index, "player_id", erased_reason(erased_at))
        else:
            kept_indexes.append(index)
            kept.append(write)
    if removed:
        outcome.problems.sort(key=lambda problem: problem.index)
    return kept_indexes, kept, removed


def _without_erased_players(
    indexes: list[int], writes: list[EventWrite], outcome: BatchOutcome, erased: dict[bytes, datetime]
) -> tuple[list[int], list[EventWrite]]:
    """Before anything is written: the events of erased players stamped up to their erasure (as read before
    the writes) are discarded (a replay of what was erased, or of what was stored before it and is kept for the
    counts, writes nothing)."""
    if not erased:
        return indexes, writes
    kept_indexes, kept, _ = _erased_events(indexes, writes, erased, outcome)
    return kept_indexes, kept


def _undo_if_erased_meanwhile(
    indexes: list[int],
    writes: list[EventWrite],
    arrivals: list[ArrivalWrite],
    outcome: BatchOutcome,
    *,
    store: SessionStore,
    clock: Clock,
) -> tuple[list[EventWrite], list[EventWrite], dict[bytes, datetime]]:
    """The writes and starts left once the events of players erased while they were being written, stamped
    before their erasure, are removed again and reported discarded; and the erasure records read.

    Checked after the writes too: an erasure writes its record, then reads the player's index. Either this
    read sees the record, and the events are removed here, or it was made before the record was, after the
    writes (and their index entries) were acknowledged, and the erasure finds and removes them; checked only
    before, a batch in flight during an erasure could land after it. A start a builder may have counted by now
    (its arrival's slot may be folded) keeps its start row and arrival without the player id, as an erasure
    leaves a counted start (docs/decisions.md, "Privacy")."""
    erased = store.erasures(sorted({w.player_hash for w in writes}))
    if not erased:
        return writes, [w for w in writes if w.event.event is EventType.START], erased
    _, kept, removed = _erased_events(indexes, writes, erased, outcome)
    if removed:
        removed_starts = {(w.player_hash, start_key(w)) for w in removed if w.event.event is EventType.START}
        their_arrivals = [a for a in arrivals if (a.player_hash, a.arrival.key) in removed_starts]
        now = clock.now()
        counted = {
            a.arrival.key.session_id for a in their_arrivals if may_have_been_folded(a.arrival.slot, now)
        }
        store.unwrite(removed, their_arrivals, counted)
    return kept, [w for w in kept if w.event.event is EventType.START], erased


def _history_unless_erased_meanwhile(
    completed: list[CompletedSession], *, store: SessionStore, hash_of: Callable[[str], bytes]
) -> tuple[list[CompletedSession], list[CompletedSession]]:
    """The completed sessions whose history rows stay, and those deleted again: a row written for a player
    erased since the check after the event writes, of a session started before the erasure.

    An erasure writes its record, then reads the player's completed sessions; this read of the records comes
    after the history rows are acknowledged. Either it sees the record, or the erasure's read comes after the
    rows and deletes them: a client's last end sent as the player asks for erasure leaves no row naming them."""
    if not completed:
        return completed, []
    erased = store.erasures(sorted({hash_of(session.player_id) for session in completed}))
    gone = _started_by_erased_players(completed, erased, hash_of)
    if gone:
        store.forget_completed(gone)
    return [session for session in completed if session not in gone], gone


def _player_hashes(writes: Sequence[EventWrite], settings: Settings) -> Callable[[str], bytes]:
    """The keyed hash of a player id: the batch's own, computed again only for a session's other player."""
    known = {w.event.player_id: w.player_hash for w in writes}
    return lambda player_id: known.get(player_id) or settings.player_hash(player_id)


def _started_by_erased_players(
    sessions: Sequence[CompletedSession], erased: Mapping[bytes, datetime], hash_of: Callable[[str], bytes]
) -> list[CompletedSession]:
    """The sessions started at or before their player's erasure."""
    if not erased:
        return []
    return [
        session
        for session in sessions
        if (erased_at := erased.get(hash_of(session.player_id))) is not None and session.start_ts <= erased_at
    ]


def start_key(write: EventWrite) -> StartKey:
    event = write.event
    assert event.country is not None  # a start always has one (parse_event)
    return StartKey(event.session_id, event.ts, event.country)


Written = TypeVar("Written", ArrivalWrite, RecordWrite)


def _rewrite_acknowledged_late(
    arrivals: list[Written], *, write: Callable[[list[Written]], None], clock: Clock
) -> list[Written]:
    """A builder may have folded a slot before a slow write into it landed: such arrivals (a start's, or a
    record's) go again into a current slot (the builder counts each once, whichever of its arrivals it meets
    first). Returns every arrival written, moved ones included."""
    written = list(arrivals)
    for _ in range(MAX_ARRIVAL_ATTEMPTS):
        acknowledged_at = clock.now()
        late = [a for a in arrivals if may_have_been_folded(a.arrival.slot, acknowledged_at)]
        if not late:
            return written
        moved = [
            replace(a, arrival=replace(a.arrival, slot=arrival_slot(a.arrival.key.ts, acknowledged_at)))
            for a in late
        ]
        write(moved)
        written += moved
        arrivals = moved
    raise DatabaseUnavailableError(
        "Cassandra acknowledged the arrivals too slowly to be sure they are counted"
    )


def changed_cache_scopes(starts: Sequence[EventWrite], completed: Sequence[CompletedSession]) -> list[str]:
    """Every country that got a start (its cached pages), every player who completed a session (history)."""
    scopes = sorted({country_scope(start_key(w).country) for w in starts})
    scopes += sorted({player_scope(session.player_id) for session in completed})
    return scopes


def _session_ids(writes: Sequence[EventWrite]) -> list[UUID]:
    return list(dict.fromkeys(w.event.session_id for w in writes))
