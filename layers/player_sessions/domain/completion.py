"""What a session's two stored halves make: its completed session (the player's history) and the records the
live-ops counts fold (its completion and its length)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from player_sessions.domain.country_starts.records import length_label
from player_sessions.models import Arrival, CompletedSession, RecordWrite, SessionHalves, StartKey
from player_sessions.retention import ttl_seconds
from player_sessions.schema import COMPLETIONS, LENGTHS
from player_sessions.settings import Settings
from player_sessions.time_buckets import arrival_slot, start_shard

ARRIVAL_TTL_SECONDS = 7 * 86_400
"""How long an arrival is kept: it is read until the builder folds its slot, seconds after it is stored, or by a
builder resuming from an older watermark, which goes back no further than its fold records (kept a day longer:
domain.country_starts.builder.FOLD_RECORD_TTL_SECONDS). Not the retention: the arrival log is no second copy of
the starts (docs/decisions.md, "Data model": an arrival is kept a week)."""


def completed_session(halves: SessionHalves, now: datetime, retention: timedelta) -> CompletedSession | None:
    """The completed session, when both halves are stored, in order, and both still retained."""
    if halves.start_ts is None or halves.end_ts is None or halves.player_id is None or halves.country is None:
        return None
    if halves.end_ts < halves.start_ts:
        return None
    if ttl_seconds(halves.start_ts, now, retention) <= 0:
        return None
    return CompletedSession(
        halves.player_id, halves.session_id, halves.country, halves.start_ts, halves.end_ts
    )


def ended_records(sessions: Iterable[SessionHalves], now: datetime, settings: Settings) -> list[RecordWrite]:
    """For each session with both halves stored: its completion record, at its start's ts (subtracted from the
    starts, it leaves the sessions open), and its length record, at its end's ts, labelled with its duration.
    An end stamped before its start still closes the session; its negative length is reported apart. Both
    expire with the older of the two events."""
    records: list[RecordWrite] = []
    for halves in sessions:
        if halves.start_ts is None or halves.end_ts is None or halves.country is None:
            continue
        ttl = ttl_seconds(min(halves.start_ts, halves.end_ts), now, settings.retention)
        if ttl <= 0:
            continue
        shard = start_shard(halves.session_id, settings.start_shards)
        kept = min(ttl, ARRIVAL_TTL_SECONDS)
        for family, ts, label in (
            (COMPLETIONS, halves.start_ts, halves.country),
            (LENGTHS, halves.end_ts, length_label(halves.country, halves.start_ts, halves.end_ts)),
        ):
            key = StartKey(halves.session_id, ts, label)
            records.append(RecordWrite(family, Arrival(arrival_slot(ts, now), key), shard, kept))
    return records
