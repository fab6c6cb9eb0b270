"""A session is one player's, starts once and ends once: an event that says otherwise about a session already
stored (or earlier in the same batch) is rejected, naming what is stored; an exact re-send changes nothing and
is stored again, harmlessly.

Without this rule a second start of a session with another ``ts`` or country was a second start row, counted
and listed twice, and a game client that learnt another player's session id could put its own player on that
session. Checked against what a read before the writes saw: two batches that contradict each other and are
written at the same moment can both pass (docs/decisions.md, "A session is one player's, starts once, ends
once").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from player_sessions.models import EventType, EventWrite, SessionHalves, format_timestamp

ANOTHER_PLAYERS_SESSION = (
    "session_id: the session is another player's (every event of a session carries its one player_id)"
)


def contradiction(write: EventWrite, known: SessionHalves | None) -> str | None:
    """Why ``write`` contradicts what is known of its session (None: it does not)."""
    if known is None:
        return None
    event = write.event
    if known.player_id is not None and known.player_id != event.player_id:
        return ANOTHER_PLAYERS_SESSION
    if event.event is EventType.START and known.start_ts is not None:
        if (known.start_ts, known.country) == (event.ts, event.country):
            return None
        return (
            f"session_id: the session already started at {format_timestamp(known.start_ts)} in "
            f"{known.country}; a session starts once (re-sending that start is harmless)"
        )
    if event.event is EventType.END and known.end_ts is not None and known.end_ts != event.ts:
        return (
            f"session_id: the session already ended at {format_timestamp(known.end_ts)}; a session ends once "
            "(re-sending that end is harmless)"
        )
    return None


@dataclass
class Agreed:
    indexes: list[int]
    writes: list[EventWrite]
    """The writes that agree with the stored halves and with the batch's earlier events, with their indexes."""
    rejected: list[tuple[int, str]]
    """(index, reason) of each of the others."""
    sessions: dict[UUID, SessionHalves]
    """Each session as it is once the agreeing writes are stored."""


def consistent_events(
    indexes: Sequence[int], writes: Sequence[EventWrite], stored: Mapping[UUID, SessionHalves]
) -> Agreed:
    """Sorts the batch's writes against what is stored of their sessions, in batch order (first come, first
    kept)."""
    known = dict(stored)
    kept_indexes: list[int] = []
    kept: list[EventWrite] = []
    rejected: list[tuple[int, str]] = []
    for index, write in zip(indexes, writes, strict=True):
        event = write.event
        halves = known.get(event.session_id)
        reason = contradiction(write, halves)
        if reason is not None:
            rejected.append((index, reason))
            continue
        kept_indexes.append(index)
        kept.append(write)
        halves = halves or SessionHalves(event.session_id, None, None, None, None)
        if event.event is EventType.START:
            halves = replace(halves, player_id=event.player_id, country=event.country, start_ts=event.ts)
        else:  # as stored: the end half leaves the player to the start (repositories.cassandra_store)
            halves = replace(halves, end_ts=event.ts)
        known[event.session_id] = halves
    return Agreed(kept_indexes, kept, rejected, known)
