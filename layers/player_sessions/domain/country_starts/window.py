"""The window a count or a listing covers, and how it splits: the rollups' buckets up to the builder's
watermark, the unfolded tail of arrivals after it, and the window's partial first second.

A count is three parts that never overlap:
- the rollups of the buckets tiling ``[a, cutoff)``, where ``a`` is the window's first whole second and
  ``cutoff`` the end of the builder's watermark slot (no folded start is stamped at or after it);
- the tail: the arrivals of the slots after the watermark, read raw (domain.country_starts.counting says how
  a late one is told apart from one a rollup already holds);
- the window's partial first second, counted from the start rows themselves.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TypeVar

from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.models import Arrival, RollupRow, Seen, StartKey
from player_sessions.repositories.protocols import StartsStore
from player_sessions.retention import oldest_retained
from player_sessions.time_buckets import (
    CLOCK_TOLERANCE,
    COARSE_LEVELS,
    FOLD_SPACE,
    Bucket,
    Level,
    Partition,
    cover,
    fold_id,
    slot_of,
    slot_start,
    start_shard,
    whole_second_after,
)


def window_for(hours: int, now: datetime, retention: timedelta) -> Window:
    """``[now - hours, now]``, never reaching further back than the retention."""
    return Window(max(now - timedelta(hours=hours), oldest_retained(now, retention)), now)


def whole_second_window(hours: int, now: datetime, retention: timedelta) -> Window:
    """As ``window_for``, from the first whole second in it: what the families without rows of their own to
    count a partial second from are counted over (domain.live_ops)."""
    window = window_for(hours, now, retention)
    return Window(whole_second_after(window.start), window.end)


@dataclass(frozen=True)
class Window:
    """``[start, end]``, both inclusive, in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Tail:
    """The arrivals the rollups do not hold yet, as one request sees them."""

    folded_through: int | None
    """Every fold up to this fold id is done (all parts have folded every slot up to the oldest watermark);
    None when nothing was ever stored."""
    cutoff: datetime | None
    """No start stamped at or after this instant is in a rollup yet that the tail does not also hold (the end
    of the oldest watermark's slot; None: nothing was ever stored)."""
    arrivals: list[Arrival]
    unread_from: datetime | None = None
    """When the tail was longer than a reader may read (TAIL_ARRIVALS_READ_AT_MOST): the arrival time from which
    its arrivals were left unread, so an answer built on it may miss starts that arrived since (it says so)."""
    watermarks: Mapping[int, int] = field(default_factory=dict)
    """Each part's watermark as read before the arrivals (empty when nothing was ever stored)."""

    def starts_in(self, window: Window) -> list[StartKey]:
        """The distinct tail starts stamped inside the window."""
        return list(self.first_slots_in(window))

    def folded_by_their_parts(self, keys: Iterable[StartKey], partition: Partition) -> set[StartKey]:
        """The keys whose every arrival in the tail lies in a slot their own part had folded when its watermark
        was read (a start's arrivals all belong to one part: time_buckets.Partition). Read before the rollups,
        such a watermark means the fold's marks and deltas were written first, so the rollups read after it
        hold the start, from that fold or an older one."""
        wanted = set(keys)
        unfolded: set[StartKey] = set()
        for arrival in self.arrivals:
            key = arrival.key
            if key in wanted and key not in unfolded:
                part = partition.part_of(start_shard(key.session_id, partition.shards))
                if arrival.slot > self.watermarks.get(part, arrival.slot - 1):
                    unfolded.add(key)
        return wanted - unfolded

    def seen_of(self, keys: Iterable[StartKey]) -> dict[StartKey, Seen]:
        """What storing them read first (domain.country_starts.seen), from every arrival of each that has it: a
        fold any of them saw, else the newest watermark."""
        wanted = set(keys)
        seen: dict[StartKey, Seen] = {}
        for arrival in self.arrivals:
            what, key = arrival.seen, arrival.key
            if what is None or key not in wanted:
                continue
            known = seen.get(key)
            if known is None or (
                known.fold is None and (what.fold is not None or what.through > known.through)
            ):
                seen[key] = what
        return seen

    def first_slots_in(self, window: Window) -> dict[StartKey, int]:
        """The distinct tail starts stamped inside the window, each with the first slot it arrived in."""
        first: dict[StartKey, int] = {}
        for arrival in self.arrivals:
            key = arrival.key
            if window.start <= key.ts <= window.end and arrival.slot < first.get(key, arrival.slot + 1):
                first[key] = arrival.slot
        return first


TAIL_SLOTS_READ_WHOLE = 120
"""A tail up to this long (in slots) is read slot by slot; a longer one (a builder that stopped) only in the
minutes that hold arrivals."""

TAIL_ARRIVALS_READ_AT_MOST = 20_000
"""The most unfolded arrivals a request keeps by default (``Settings.tail_arrivals_read_at_most``): the builders
keep the tail to a few seconds (some hundreds of arrivals at a million starts an hour), so only a stopped or
overwhelmed builder brings a reader here. The tail's oldest whole slots that fit are kept, the newer ones left
unread, and the answer says from when (``Tail.unread_from``) instead of growing without bound; finding where
the cap falls reads at most about twice as many rows again (StartsStore.read_arrivals_within)."""


def read_tail(
    store: StartsStore, now: datetime, partition: Partition, at_most: int = TAIL_ARRIVALS_READ_AT_MOST
) -> Tail:
    """The parts' watermarks first, then every shard's arrivals after the oldest of them, up to now (plus the
    clock tolerance, for a writer whose clock runs ahead): read in that order, no start can fall between the
    rollups and the tail. A faster part's arrivals before its own watermark are in the tail too; a start among
    them that a rollup also counts is told apart by its mark (domain.country_starts.counting)."""
    tail, _, _ = read_tail_and_rollups(store, now, partition, at_most, lambda _cutoff: (None, []))
    return tail


Planned = TypeVar("Planned")


def read_tail_and_rollups(
    store: StartsStore,
    now: datetime,
    partition: Partition,
    at_most: int,
    plan: Callable[[datetime | None], tuple[Planned, Sequence[Bucket]]],
    *,
    settled: SettledArrivals | None = None,
) -> tuple[Tail, Planned, dict[Bucket, list[RollupRow]]]:
    """``read_tail``, and what ``plan`` makes of the tail's cutoff (anything, and the buckets whose rollups it
    wants), and those rollups, read while the arrivals are: their requests go out right after the watermarks
    (whose cutoff decides the buckets), before the arrivals', and Cassandra may answer them in either order. Either is sound: what a count needs of the
    order is the watermarks before both (a fold up to them is in the rollups and told from the tail by its
    part's watermark) and the marks and fold records after both (read later, by the caller), so a fold that
    lands between the two reads is seen by the one read after it and told apart from the other. With
    ``settled``, the tail's settled slots read by an earlier request are taken from there
    (domain.country_starts.settled)."""
    parts = partition.all_parts
    watermarks = store.read_progress(parts)
    if len(watermarks) < len(parts):
        first = store.first_arrival_minute()
        if first is None:
            planned, buckets = plan(None)
            return Tail(None, None, []), planned, store.start_reading_rollups(buckets)()
        # A part that never folded stands before the first arrival.
        watermarks = {part: watermarks.get(part, slot_of(first) - 1) for part in parts}
    oldest = min(watermarks.values())
    cutoff = slot_start(oldest + 1)
    planned, buckets = plan(cutoff)
    rollups = store.start_reading_rollups(buckets)
    newest = slot_of(now + CLOCK_TOLERANCE)
    slots = _tail_slots(store, oldest, newest)
    shards = list(range(partition.shards))
    arrivals, unread = (
        store.read_arrivals_within(slots, shards, at_most)
        if settled is None
        else settled.read(store, slots, shards, at_most, now)
    )
    tail = Tail(
        fold_id(oldest, FOLD_SPACE - 1),
        cutoff,
        arrivals,
        None if unread is None else slot_start(unread),
        watermarks,
    )
    return tail, planned, rollups()


def _tail_slots(store: StartsStore, watermark: int, newest: int) -> list[int]:
    if newest - watermark <= TAIL_SLOTS_READ_WHOLE:
        return list(range(watermark + 1, newest + 1))
    first_minute, last_minute = (
        Level.MINUTE.floor(slot_start(watermark + 1)),
        Level.MINUTE.floor(slot_start(newest)),
    )
    minutes = store.arrival_minutes_between(first_minute, last_minute, limit=(newest - watermark) // 60 + 2)
    return [
        slot
        for minute in minutes
        for slot in range(max(watermark + 1, slot_of(minute)), min(newest, slot_of(minute) + 59) + 1)
    ]


@dataclass(frozen=True)
class WindowPlan:
    edge: tuple[datetime, datetime] | None
    """The partial first second, ``[window.start, a)``, counted from start rows (None when ``start`` is whole)."""
    buckets: list[Bucket]
    """The buckets tiling ``[a, rolled_until)``, oldest first."""
    rolled_until: datetime

    @cached_property
    def fine(self) -> list[Bucket]:
        """The buckets under an hour, at the window's two ends (read on every request)."""
        return [bucket for bucket in self.buckets if bucket.level not in COARSE_LEVELS]

    @cached_property
    def coarse(self) -> list[Bucket]:
        """The whole hours, days and months between (their sums may be cached)."""
        return [bucket for bucket in self.buckets if bucket.level in COARSE_LEVELS]

    @property
    def edge_bucket(self) -> Bucket | None:
        """The second holding the partial first second: its rollup names the countries to read there."""
        return Bucket(Level.SECOND, Level.SECOND.floor(self.edge[0])) if self.edge else None

    def bucket_holding(self, moment: datetime, starts: Sequence[datetime]) -> Bucket | None:
        """The bucket of the plan holding ``moment``; ``starts`` are the buckets' starts, in order."""
        index = bisect.bisect_right(starts, moment) - 1
        if index >= 0 and self.buckets[index].contains(moment):
            return self.buckets[index]
        return None


def plan_window(window: Window, cutoff: datetime | None) -> WindowPlan:
    first_whole = whole_second_after(window.start)
    rolled_until = (
        first_whole if cutoff is None else max(first_whole, Level.SECOND.floor(min(cutoff, window.end)))
    )
    edge = (window.start, first_whole) if first_whole > window.start else None
    return WindowPlan(edge, cover(first_whole, rolled_until), rolled_until)
