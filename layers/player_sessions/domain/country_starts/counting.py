"""Exact session-start counts per country over any window, reading rows bounded by the window's bucket
structure and a short tail of recent seconds, never by how many starts the window holds.

The window splits into rollups, tail and partial first second (domain.country_starts.window). A tail start
stamped at or after the watermark's cutoff is counted as is; one stamped earlier (late) is counted unless its
own part had folded every arrival of it when the watermarks were read, or the bucket holding it already
includes the fold that counted it (its mark says which). Readers race the builder safely because the builder
makes each step visible before the next: the fold record, the marks, the deltas, the watermark
(domain.country_starts.builder).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from player_sessions.domain.country_starts.records import LATE, Contributions, countries_only
from player_sessions.domain.country_starts.rollups import Inclusion, bucket_state
from player_sessions.domain.country_starts.seen import not_in_the_rollups
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import (
    TAIL_ARRIVALS_READ_AT_MOST,
    Tail,
    Window,
    WindowPlan,
    plan_window,
    read_tail_and_rollups,
)
from player_sessions.histograms import dumps_counts, loads_counts
from player_sessions.models import StartKey, to_epoch_ms
from player_sessions.repositories.cache_protocol import CacheToken, NoCache, ReadCache, decoded_or_miss
from player_sessions.repositories.protocols import StartsStore
from player_sessions.schema import STARTS, RollupFamily
from player_sessions.time_buckets import Bucket, Partition, hour_of, whole_second_after

COARSE_CACHE_TTL_SECONDS = 300


@dataclass
class RolledCounts:
    counts: Counter[str]
    inclusion: dict[Bucket, Inclusion]


@dataclass(frozen=True)
class StartCounts:
    counts: Counter[str]
    """Per country (or, for another family, per its keys: domain.country_starts.records), without ``~late``."""
    unread_from: datetime | None = None
    """None: exact. Else the builders are far behind and the counts leave out starts that arrived from then on
    (domain.country_starts.window.TAIL_ARRIVALS_READ_AT_MOST)."""
    folded_through: datetime | None = None
    """Every arrival stored before this instant is in the rollups (the end of the oldest part's watermark
    slot); None when nothing was ever stored."""
    late: int = 0
    """How many of the counted records arrived more than the clock-skew allowance after their own ts (from the
    window's first whole second on)."""


def cache_scope(family: RollupFamily) -> str:
    """The cache generation of a family's cached coarse sums, which its builder bumps (``_CachedCoarse``)."""
    return "rollups" if family is STARTS else f"rollups:{family.name}"


def count_starts_by_country(
    window: Window,
    *,
    store: StartsStore,
    now: datetime,
    partition: Partition,
    contributions: Contributions,
    cache: ReadCache | None = None,
    tail_at_most: int = TAIL_ARRIVALS_READ_AT_MOST,
    settled: SettledArrivals | None = None,
) -> StartCounts:
    """Starts per country in ``window`` (or, for another family, what its records add up to there), exactly:
    each stored record once, however often it arrived, unless the unfolded tail is longer than a request may
    read (then said). Only the starts have rows to count a window's partial first second from: another
    family's window starts at a whole second. The tail's settled slots that an earlier request read are taken
    from ``settled`` (domain.country_starts.settled)."""
    if store.family is not STARTS and whole_second_after(window.start) != window.start:
        raise ValueError(f"the {store.family.name} family counts from a whole second only")

    def plan_for(cutoff: datetime | None) -> tuple[_Planned, list[Bucket]]:
        planned = _Planned.of(window, cutoff, cache or NoCache(), store.family)
        return planned, planned.wanted

    tail, planned, rows = read_tail_and_rollups(
        store, now, partition, tail_at_most, plan_for, settled=settled
    )
    plan, fine, coarse, cached = planned.plan, planned.plan.fine, planned.plan.coarse, planned.cached
    states = {bucket: bucket_state(rows.get(bucket, [])) for bucket in planned.wanted}
    rolled = RolledCounts(Counter(), {})
    for bucket in fine:
        rolled.counts.update(states[bucket].counts)
        rolled.inclusion[bucket] = Inclusion.of(states[bucket], tail.folded_through)
    if cached.value is not None:
        rolled.counts.update(cached.value.counts)
        rolled.inclusion.update(cached.value.inclusion)
    elif coarse:
        coarse_part = RolledCounts(Counter(), {})
        for bucket in coarse:
            coarse_part.counts.update(states[bucket].counts)
            coarse_part.inclusion[bucket] = Inclusion.of(states[bucket], tail.folded_through)
        cached.store(coarse_part)
        rolled.counts.update(coarse_part.counts)
        rolled.inclusion.update(coarse_part.inclusion)

    total = rolled.counts
    in_window = tail.first_slots_in(window)
    edge_keys = [key for key in in_window if plan.edge and key.ts < plan.edge[1]]
    total.update(
        _tail_counts(
            {key: slot for key, slot in in_window.items() if not (plan.edge and key.ts < plan.edge[1])},
            plan,
            rolled.inclusion,
            store,
            contributions,
            tail=tail,
            partition=partition,
        )
    )
    if plan.edge:
        edge_state = states.get(plan.edge_bucket) if plan.edge_bucket else None
        countries = sorted(
            set(countries_only(edge_state.counts) if edge_state else ()) | {key.country for key in edge_keys}
        )
        if countries:
            total.update(store.edge_country_counts(hour_of(plan.edge[0]), countries, *plan.edge))
    late = total.pop(LATE, 0)
    return StartCounts(+total, tail.unread_from, tail.cutoff, late)


@dataclass(frozen=True)
class _Planned:
    """The window's plan for the reader's cutoff, and its coarse buckets' cached sum, looked up once the
    watermarks are read (``_CachedCoarse``)."""

    plan: WindowPlan
    cached: _CachedCoarse

    @classmethod
    def of(cls, window: Window, cutoff: datetime | None, cache: ReadCache, family: RollupFamily) -> _Planned:
        plan = plan_window(window, cutoff)
        return cls(plan, _CachedCoarse(plan.coarse, cache, family))

    @cached_property
    def wanted(self) -> list[Bucket]:
        """The buckets whose rollups are read: the fine ones, the edge second, the coarse ones unless cached."""
        edge = [self.plan.edge_bucket] if self.plan.edge_bucket else []
        return self.plan.fine + edge + (self.plan.coarse if self.cached.value is None else [])


def _tail_counts(
    keys: dict[StartKey, int],
    plan: WindowPlan,
    inclusion: dict[Bucket, Inclusion],
    store: StartsStore,
    contributions: Contributions,
    *,
    tail: Tail,
    partition: Partition,
) -> Counter[str]:
    """What the tail's records (each with the first slot it arrived in) add that the rollups do not hold. A late
    record (stamped before the rollups' cutoff) that its own part had folded, every arrival of it, when the
    watermarks were read is in the rollups already (``Tail.folded_by_their_parts``); of the others, what ingest
    read before storing them decides (domain.country_starts.seen), and the marks of those it cannot are read."""
    counts: Counter[str] = Counter()
    late: list[tuple[StartKey, Bucket]] = []
    starts = [bucket.start for bucket in plan.buckets]
    for key, slot in keys.items():
        bucket = plan.bucket_holding(key.ts, starts) if key.ts < plan.rolled_until else None
        if bucket is None:
            counts.update(contributions(key, slot))
        else:
            late.append((key, bucket))
    if late:
        in_rollups = tail.folded_by_their_parts((key for key, _ in late), partition)
        late = [(key, bucket) for key, bucket in late if key not in in_rollups]
    if late:
        not_held, late = not_in_the_rollups(
            late, tail.seen_of(k for k, _ in late), inclusion, store, partition
        )
        for key in not_held:
            counts.update(contributions(key, keys[key]))
    if late:
        marks = store.read_marks([key for key, _ in late])
        for key, bucket in late:
            mark = marks.get(key)
            if mark is None or not inclusion[bucket].includes(mark):
                counts.update(contributions(key, keys[key]))
    return counts


class _CachedCoarse:
    """The sum of a window's whole hours, days and months, cached under the ``rollups`` generation, which the
    builder bumps before it moves the watermark past a fold that changed such a bucket. Read after the
    watermark, a cached sum therefore includes every fold up to the reader's watermark that touched it; the
    newer folds it includes are stored with it."""

    def __init__(self, buckets: list[Bucket], cache: ReadCache, family: RollupFamily) -> None:
        self._cache = cache
        self._buckets = buckets
        self._key = (
            f"coarse:{family.name}:{to_epoch_ms(buckets[0].start)}:{to_epoch_ms(buckets[-1].start)}:"
            f"{len(buckets)}"
            if buckets
            else ""
        )
        self._token: CacheToken | None = None
        self.value: RolledCounts | None = None
        if buckets:
            self._token, raw = cache.lookup([cache_scope(family)], self._key)
            self.value = decoded_or_miss(raw, self._decode)

    def store(self, value: RolledCounts) -> None:
        if not self._buckets:
            return
        inclusion = [
            [
                value.inclusion[b].folded_through,
                value.inclusion[b].base_slot,
                sorted(value.inclusion[b].delta_slots),
            ]
            for b in self._buckets
        ]
        self._cache.store(
            self._token,
            self._key,
            json.dumps({"counts": dumps_counts(value.counts), "inclusion": inclusion}).encode(),
            COARSE_CACHE_TTL_SECONDS,
        )

    def _decode(self, raw: bytes) -> RolledCounts:
        decoded = json.loads(raw)
        inclusion = {
            bucket: Inclusion(through, base, frozenset(deltas))
            for bucket, (through, base, deltas) in zip(self._buckets, decoded["inclusion"], strict=True)
        }
        return RolledCounts(Counter(loads_counts(decoded["counts"])), inclusion)
