"""Time structure of session starts: hour partitions, arrival slots, and the rollup buckets that tile a window.

Two clocks matter. A start's own ``ts`` (the client's) decides which rollup buckets count it. The server's clock
at the moment a start is stored decides its arrival slot: the builder folds arrivals slot by slot, and a slot is
folded only once it is ``SLOT_SETTLE`` old, so lateness of ``ts`` never delays anything. See docs/decisions.md
("Live traffic: arrival slots folded by a builder").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from uuid import UUID

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SLOT_SECONDS = 1
"""Arrival slots are whole seconds of server time: slot ``n`` is ``[n, n + 1)`` seconds after the epoch."""
SLOT_SETTLE = timedelta(seconds=1.5)
"""A slot is folded once it ended this long ago. A writer whose arrival row was acknowledged later than that
(minus CLOCK_TOLERANCE: half a second after its slot ended) writes it again into a current slot, so a slow
write is never left out; shorter would re-send more of a loaded node's writes, longer lengthens every tail."""
CLOCK_TOLERANCE = timedelta(seconds=1)
"""The most two servers' clocks may differ (Lambda hosts are kept within milliseconds by Amazon Time Sync)."""


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def start_shard(session_id: UUID, shards: int) -> int:
    """The same session always lands in the same shard, so a re-sent start rewrites the same row."""
    return zlib.crc32(session_id.bytes) % shards


# ---- Arrival slots ----------------------------------------------------------------------------------------

FOLD_SPACE = 64
"""Fold ids number the folds of every part in slot order: ``slot * FOLD_SPACE + part`` (at most 64 parts)."""


@dataclass(frozen=True)
class Partition:
    """How the arrival log is split among builders: part ``p`` folds the shards ``s`` with ``s % parts == p``.

    A session's starts always land in the same shard, so every arrival of one start (its re-sends too) is folded
    by one part, in slot order: the parts never contend for a start, and each keeps its own watermark."""

    parts: int
    shards: int

    def shards_of(self, part: int) -> list[int]:
        return [shard for shard in range(self.shards) if shard % self.parts == part]

    def part_of(self, shard: int) -> int:
        return shard % self.parts

    @property
    def all_parts(self) -> list[int]:
        return list(range(self.parts))


def fold_id(slot: int, part: int) -> int:
    """The fold of ``slot`` by ``part``: what marks, fold records and rollup rows are keyed by."""
    return slot * FOLD_SPACE + part


def slot_and_part(fold: int) -> tuple[int, int]:
    return divmod(fold, FOLD_SPACE)


def slot_of(moment: datetime) -> int:
    return int((moment - EPOCH) // timedelta(seconds=SLOT_SECONDS))


def slot_start(slot: int) -> datetime:
    return EPOCH + timedelta(seconds=slot * SLOT_SECONDS)


def arrival_slot(ts: datetime, now: datetime) -> int:
    """Where a start that is being stored now goes: the current slot, or, for a start stamped ahead of the
    server's clock, the slot of its own ``ts``. So every folded start has ``ts`` before its slot's end."""
    return slot_of(max(now, ts))


def last_foldable_slot(now: datetime) -> int:
    """The newest slot the builder may fold at ``now``: it ended at least SLOT_SETTLE ago."""
    return slot_of(now - SLOT_SETTLE) - 1


def next_slot_foldable_at(now: datetime) -> datetime:
    """When the slot after the newest one foldable at ``now`` may be folded (SLOT_SETTLE after it ends)."""
    return slot_start(last_foldable_slot(now) + 2) + SLOT_SETTLE


def may_have_been_folded(slot: int, acknowledged_at: datetime) -> bool:
    """Whether a builder, on a clock up to CLOCK_TOLERANCE ahead, may have folded ``slot`` before a write into it
    that was acknowledged at ``acknowledged_at`` (writer's clock) became visible."""
    return slot <= last_foldable_slot(acknowledged_at + CLOCK_TOLERANCE)


# ---- Rollup buckets ---------------------------------------------------------------------------------------


class Level(Enum):
    """Rollup levels, finest first. Each level's buckets tile its parent's exactly; ``period`` is the partition
    a bucket lives in (its ancestor a few levels up), so any run of sibling buckets is one range read."""

    SECOND = ("s", 1)
    TEN_SECONDS = ("10s", 10)
    MINUTE = ("m", 60)
    TEN_MINUTES = ("10m", 600)
    HOUR = ("h", 3600)
    DAY = ("d", 86_400)
    MONTH = ("mo", 0)

    def __init__(self, code: str, seconds: int) -> None:
        self.code = code
        self.seconds = seconds
        self.span = timedelta(seconds=seconds)

    def floor(self, moment: datetime) -> datetime:
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        if self is Level.MONTH:
            return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return moment - (moment - EPOCH) % self.span

    def after(self, start: datetime) -> datetime:
        """The start of the next bucket of this level."""
        if self is Level.MONTH:
            return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return start + self.span

    def period(self, start: datetime) -> datetime:
        return _PERIOD_LEVEL[self].floor(start) if self in _PERIOD_LEVEL else start.replace(month=1, day=1)


_PERIOD_LEVEL = {
    Level.SECOND: Level.HOUR,
    Level.TEN_SECONDS: Level.HOUR,
    Level.MINUTE: Level.DAY,
    Level.TEN_MINUTES: Level.DAY,
    Level.HOUR: Level.MONTH,
}
"""Days and months live in the partition of their year (at most 366 and 12 rows)."""
LEVELS: tuple[Level, ...] = tuple(Level)
_FIXED_COARSEST_FIRST = tuple(level for level in reversed(LEVELS) if level is not Level.MONTH)
COARSE_LEVELS = frozenset({Level.HOUR, Level.DAY, Level.MONTH})
"""Whole hours and more: the part of a window's cover that readers cache."""


@dataclass(frozen=True)
class Bucket:
    level: Level
    start: datetime

    @property
    def end(self) -> datetime:
        return self.level.after(self.start)

    @property
    def period(self) -> datetime:
        return self.level.period(self.start)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def buckets_of(ts: datetime) -> list[Bucket]:
    """The bucket of every level that counts a start at ``ts``."""
    return [Bucket(level, level.floor(ts)) for level in LEVELS]


def cover(start: datetime, end: datetime) -> list[Bucket]:
    """The fewest aligned buckets that tile ``[start, end)`` (both on whole seconds), oldest first: finer
    buckets climb from ``start`` to the coarsest boundary, coarser ones span the middle, finer ones again
    reach ``end``."""
    buckets: list[Bucket] = []
    cursor = start if start.tzinfo is UTC else start.astimezone(UTC)
    while cursor < end:
        # The coarsest level the cursor is aligned to, stepped down until its bucket ends in time. Aligned to a
        # level is aligned to every finer one: each fixed length divides the next, and a month starts a day.
        offset = cursor - EPOCH
        level = Level.SECOND
        if not offset.microseconds:
            seconds = offset.days * 86_400 + offset.seconds
            level = next(lv for lv in _FIXED_COARSEST_FIRST if not seconds % lv.seconds)
            if level is Level.DAY and cursor.day == 1:
                level = Level.MONTH
        while level is not Level.SECOND and level.after(cursor) > end:
            level = LEVELS[LEVELS.index(level) - 1]
        buckets.append(Bucket(level, cursor))
        cursor = level.after(cursor)
    return buckets


def children(bucket: Bucket) -> list[Bucket]:
    """The buckets one level down that tile ``bucket``, oldest first (none for a second)."""
    index = LEVELS.index(bucket.level)
    if index == 0:
        return []
    finer = LEVELS[index - 1]
    found, cursor = [], bucket.start
    while cursor < bucket.end:
        found.append(Bucket(finer, cursor))
        cursor = finer.after(cursor)
    return found


def whole_second_after(moment: datetime) -> datetime:
    floor = Level.SECOND.floor(moment)
    return floor if floor == moment else floor + timedelta(seconds=1)
