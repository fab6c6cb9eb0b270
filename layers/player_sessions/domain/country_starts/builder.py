"""The builder: folds settled arrival slots into the rollups, oldest first, off the request path.

The arrival log is split into parts (``Settings.rollup_parts``; time_buckets.Partition): part ``p`` folds the
arrivals of its shards, with its own watermark, and several builders, one per part, fold in parallel. A start's
arrivals all land in one shard, so no two parts ever count the same start.

Part ``p`` folding slot ``s`` (fold id ``f = fold_id(s, p)``): read the slot's arrivals in its shards; keep the
starts no earlier fold counted (their mark is missing, or is ``f`` itself after an interrupted fold); record that
set as fold ``f`` (first writer wins, so two builders of one part agree); mark each start counted by ``f``; write
one delta row for ``f`` into every bucket of every level its starts fall in; then move the part's watermark to
``s``. Each step is idempotent, and each is visible before the next, which is what readers rely on
(domain.country_starts.counting). A bucket with several deltas is compacted into one base row, only up to the
folds every part has done (the oldest watermark), so a slower part's delta never falls under a base.
See docs/decisions.md ("Live traffic: arrival slots folded by a builder").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from player_sessions.clock import Clock
from player_sessions.domain.cache_debt import CacheDebtCollector
from player_sessions.domain.country_starts.counting import cache_scope
from player_sessions.domain.country_starts.records import Contributions, contributions_of
from player_sessions.domain.country_starts.rollups import bucket_state
from player_sessions.models import StartKey
from player_sessions.repositories.cache_protocol import NoCache, ReadCache
from player_sessions.repositories.protocols import RollupStore
from player_sessions.retention import ttl_naming, ttl_seconds
from player_sessions.schema import STARTS
from player_sessions.settings import Settings
from player_sessions.time_buckets import (
    CLOCK_TOLERANCE,
    COARSE_LEVELS,
    FOLD_SPACE,
    LEVELS,
    Bucket,
    Level,
    buckets_of,
    fold_id,
    last_foldable_slot,
    next_slot_foldable_at,
    slot_of,
)

SLOTS_READ_AT_ONCE = 25
"""Slots whose arrivals one request reads (25 slots of up to 4 shards: Keyspaces' 100 partitions per IN)."""
COMPACT_AFTER_DELTAS = 4
"""A bucket is compacted once this process has written this many deltas into it since its last base."""
SETTLED_AFTER_SLOTS = 5
"""A bucket with deltas that has had none for this many slots is compacted too."""
SETTLED_COMPACTIONS_PER_RUN = 100
"""The most settled buckets one run compacts (each a read of its rows and a base written)."""
FOLD_RECORD_TTL_SECONDS = 8 * 86_400
"""A fold's record is needed while a builder may still fold its slot (one resumed after a freeze), and while a
reader may meet, in the tail, a start stored after it (domain.country_starts.seen; an arrival is kept a week):
kept a day longer than the arrivals, but never past the retention of the newest start it names."""
WAKE_MARGIN = timedelta(milliseconds=10)
"""A caught-up builder sleeps this much past the moment its next slot may be folded (a run that woke a moment
early would only read the watermarks and sleep again)."""
COARSE_CACHE_GUARD = timedelta(seconds=5)
"""Readers cache sums of whole hours and more; a delta into such a bucket that ends within this much of now
(or earlier) may change a cached sum, so the builder bumps the cache's ``rollups`` generation."""


@dataclass
class FoldReport:
    slots_folded: int = 0
    """Slots whose arrivals were folded (empty minutes are skipped without reading)."""
    starts_counted: int = 0
    """Starts counted for the first time (a start folded before is not counted again)."""
    records_counted: int = 0
    """Records of the other families (domain.live_ops) counted for the first time."""
    deltas_written: int = 0
    bases_written: int = 0
    """Rollup rows written: a delta per bucket a fold changed, a base per bucket compacted."""
    watermark: int | None = None
    """The part's newest arrival slot folded with every slot before it (None: nothing folded yet)."""
    behind_seconds: float = 0.0
    """How far the watermark is behind the newest foldable slot after this run."""

    def add(self, later: FoldReport) -> None:
        """Adds a later run of the same part: its counts summed, its watermark and lag the latest."""
        self.slots_folded += later.slots_folded
        self.starts_counted += later.starts_counted
        self.records_counted += later.records_counted
        self.deltas_written += later.deltas_written
        self.bases_written += later.bases_written
        self.watermark, self.behind_seconds = later.watermark, later.behind_seconds


def pause_after(report: FoldReport, now: datetime) -> float:
    """Seconds a builder waits after a run that left it ``report``: none while it is a slot or more behind;
    caught up, until its next slot may be folded, so that each run finds one to fold (a reader's tail ends
    SLOT_SETTLE and the fold behind now) rather than polling the watermarks in between."""
    if report.behind_seconds >= 1:
        return 0.0
    return max(0.0, (next_slot_foldable_at(now) + WAKE_MARGIN - now).total_seconds())


@dataclass
class CompactionTracker:
    """Deltas written per bucket since its last base, in this process (lost on restart: compaction then comes
    a few deltas later, which costs readers a few rows, never a wrong count). A bucket is compacted once it has
    ``compact_after`` deltas, or once it has stopped changing: no delta for ``settle_slots`` slots.

    A compaction sums only the folds every part has done (``done``, a slot): an hour, day or month whose latest
    delta is newer stays tracked after it, as holding one delta, so it is compacted again once it settles, and
    its newest deltas are not left to every reader of it until they expire. A finer bucket is forgotten, as
    before: it is read only at a window's ends (docs/decisions.md, "No delta is left behind")."""

    deltas: Counter[Bucket] = field(default_factory=Counter)
    compact_after: int = COMPACT_AFTER_DELTAS
    settle_slots: int = SETTLED_AFTER_SLOTS
    last_slot: dict[Bucket, int] = field(default_factory=dict)
    """The slot of each bucket's latest delta, oldest first (a bucket moves to the end when it gets one)."""

    def note(self, buckets: Sequence[Bucket], slot: int, done: int) -> list[Bucket]:
        """Records a delta in each of ``buckets`` at ``slot``; returns those due now (compacted through
        ``done``)."""
        self.deltas.update(buckets)
        for bucket in buckets:
            # The newest of its deltas: one tracker may see another part's older slot after a newer one (a
            # tool folding every part in turn)
            self.last_slot[bucket] = max(slot, self.last_slot.pop(bucket, slot))
        due = [bucket for bucket in buckets if self.deltas[bucket] >= self.compact_after]
        self._compacting(due, done)
        return due

    def done_through(self, done: int, levels: Collection[Level]) -> list[Bucket]:
        """Every bucket of ``levels`` with deltas since its last base, none after ``done`` (to be compacted
        now)."""
        due = [bucket for bucket, last in self.last_slot.items() if last <= done and bucket.level in levels]
        self._compacting(due, done)
        return due

    def settled(self, slot: int, done: int, at_most: int) -> list[Bucket]:
        """Up to ``at_most`` buckets with deltas, none since ``settle_slots`` before ``slot`` nor after
        ``done``, oldest first (to be compacted now)."""
        due: list[Bucket] = []
        for bucket, last in self.last_slot.items():
            if last > slot - self.settle_slots or len(due) == at_most:
                break
            if last <= done:
                due.append(bucket)
        self._compacting(due, done)
        return due

    def _compacting(self, buckets: Sequence[Bucket], done: int) -> None:
        for bucket in buckets:
            if self.last_slot[bucket] <= done or bucket.level not in COARSE_LEVELS:
                del self.deltas[bucket]
                del self.last_slot[bucket]
            else:
                self.deltas[bucket] = 1


IDLE_PROGRESS_SLOTS = 10
"""A run that passed only empty slots (for its part) moves the stored watermark once it is this many slots
behind, not every run: an idle part costs a conditional write every ten seconds instead of four a second, and
readers read at most this many more (empty, for that part) slots of arrivals."""


@dataclass
class RollupBuilder:
    """Folds a store's arrivals into its rollups (those of the store's family), at the clock's now. Deployed,
    each part's scheduled function keeps one per family and environment (``Services.rollup_builder``), so
    its compaction tracker lives across runs."""

    store: RollupStore
    clock: Clock
    settings: Settings
    cache: ReadCache = field(default_factory=NoCache)
    tracker: CompactionTracker = field(default_factory=CompactionTracker)

    def fold(self, part: int = 0, max_slots: int = 120, max_busy_slots: int | None = None) -> FoldReport:
        """Folds every settled slot after the part's watermark, oldest first, at most ``max_slots`` of them, and
        of those with arrivals at most ``max_busy_slots`` (None: no such bound; with one, the first read of
        arrivals is of that many slots). The cost of a run is bounded by its slots: a read per 25 of them, their
        arrivals, the arrivals' marks and start rows, and the buckets they touch (at most seven deltas per
        start)."""
        store = self.store
        report = FoldReport()
        newest = last_foldable_slot(self.clock.now())
        partition = self.settings.partition
        watermarks = self._watermarks()
        if watermarks is None:
            return report
        others = min((slot for p, slot in watermarks.items() if p != part), default=None)
        watermark = watermarks[part]
        report.watermark = watermark
        shards = partition.shards_of(part)
        # Every slot, in order, empty ones too (25 per read): a builder that passed over a slot it had not yet
        # seen arrivals in would let another one fold it under rows already compacted past it.
        slot = watermark + 1
        busy_left = max_slots if max_busy_slots is None else max_busy_slots
        read_at_once = min(SLOTS_READ_AT_ONCE, busy_left)
        while slot <= newest and report.slots_folded < max_slots and busy_left > 0:
            last = min(newest, slot + read_at_once - 1, slot + max_slots - report.slots_folded - 1)
            read_at_once = SLOTS_READ_AT_ONCE
            chunk = list(range(slot, last + 1))
            arrivals: dict[int, list[StartKey]] = {}
            for arrival in store.read_arrivals(chunk, shards):
                arrivals.setdefault(arrival.slot, []).append(arrival.key)
            for current in chunk:
                if arrivals.get(current):
                    # Compaction sums only folds every part has done: its own up to this slot, the others' up
                    # to the oldest of their watermarks as read at the start (they only move forward since).
                    done = current if others is None else min(current, others)
                    counted = self._fold_slot(current, arrivals[current], part=part, done=done)
                    if store.family is STARTS:
                        report.starts_counted += counted.starts
                    else:
                        report.records_counted += counted.starts
                    report.deltas_written += counted.deltas
                    report.bases_written += counted.bases
                    report.watermark = current  # _fold_slot stored it
                    busy_left -= 1
                report.slots_folded += 1
                watermark = current
                if busy_left == 0:
                    break
            slot = watermark + 1
        # Compaction sums only the folds the stored watermark covers: empty slots passed over without storing
        # it (an idle part) may still get a late arrival, which the part's next run folds.
        stored = self._finish(report, part, watermark, newest)
        done = stored if others is None else min(stored, others)
        settled = self.tracker.settled(watermark, done, SETTLED_COMPACTIONS_PER_RUN)
        report.bases_written += self._compact(settled, fold_id(done, FOLD_SPACE - 1), self.clock.now())
        return report

    def compact_what_is_left(self, levels: Collection[Level] = LEVELS) -> int:
        """Compacts every bucket of ``levels`` this builder wrote deltas to since it last compacted it, all of
        them in slots every part has folded; returns the bases written
        (the others stay tracked). What a builder about to stop does (a scheduled invocation's end, a local
        builder shut down, a catch-up after a bulk load, for its hours, days and months): its tracker may die
        with it, and a bucket that stopped changing would keep those deltas, rows every reader of it reads,
        until they expire."""
        if not self.tracker.last_slot or (watermarks := self._watermarks()) is None:
            return 0
        done = min(watermarks.values())
        return self._compact(
            self.tracker.done_through(done, levels), fold_id(done, FOLD_SPACE - 1), self.clock.now()
        )

    def _watermarks(self) -> dict[int, int] | None:
        """Every part's watermark; a part that never folded stands before the first arrival (None: none yet)."""
        parts = self.settings.partition.all_parts
        watermarks = self.store.read_progress(parts)
        if len(watermarks) < len(parts):
            first = self.store.first_arrival_minute()
            if first is None:
                return None
            watermarks = {p: watermarks.get(p, slot_of(first) - 1) for p in parts}
        return watermarks

    def fold_every_part(self, max_slots: int = 120) -> FoldReport:
        """One run of every part's builder, in turn (what tests and one-thread tools do; deployed, each part has
        a builder of its own). The report sums them; its watermark is the oldest part's."""
        total = FoldReport()
        for part in self.settings.partition.all_parts:
            report = self.fold(part, max_slots)
            oldest, most_behind = total.watermark, total.behind_seconds
            total.add(report)
            # Across parts: the oldest watermark and the most lag.
            if oldest is not None:
                total.watermark = oldest if report.watermark is None else min(oldest, report.watermark)
            total.behind_seconds = max(most_behind, report.behind_seconds)
        return total

    def _fold_slot(self, slot: int, arrivals: Sequence[StartKey], *, part: int, done: int) -> _Counted:
        store, retention = self.store, self.settings.retention
        now = self.clock.now()
        fold = fold_id(slot, part)
        keys = list(dict.fromkeys(arrivals))
        marks = store.read_marks(keys) if keys else {}
        candidates = [
            key for key in keys if marks.get(key, fold) == fold and ttl_seconds(key.ts, now, retention) > 0
        ]
        # An arrival whose start row is missing belongs to a batch that failed half way (its client was told to
        # re-send): counted only once the start row is stored, like the listing shows it.
        stored = store.stored_starts(candidates) if candidates else set()
        candidates = [key for key in candidates if key in stored]
        if candidates and store.read_progress([part]).get(part, slot - 1) >= slot:
            # Another run of this part folded the slot (and all it holds) since this one read the watermarks,
            # which it did long ago (a process resumed): an arrival it meets that the other run did not was
            # written again into a newer slot by its writer and is counted there. Claimed here, its delta
            # could fall under a base compacted since.
            candidates = []
        record_ttl = ttl_naming([key.ts for key in candidates], now, retention, FOLD_RECORD_TTL_SECONDS)
        counted = store.claim_fold(fold, candidates, record_ttl) if candidates else []
        store.write_marks([(key, fold, max(1, ttl_seconds(key.ts, now, retention))) for key in counted])
        deltas = _deltas(counted, slot, contributions_of(store.family, self.settings))
        ttls = {bucket: ttl_seconds(bucket.end, now, retention) for bucket in deltas}
        store.write_deltas(
            fold,
            [(bucket, dict(counts), ttls[bucket]) for bucket, counts in deltas.items() if ttls[bucket] > 0],
        )
        if any(
            b.level in COARSE_LEVELS and b.end <= now + CLOCK_TOLERANCE + COARSE_CACHE_GUARD for b in deltas
        ):
            # Before the watermark moves: a reader that sees the new watermark also sees the new generation.
            self.cache.invalidate([cache_scope(store.family)])
        store.write_progress(part, slot)
        bases = self._compact(self.tracker.note(list(deltas), slot, done), fold_id(done, FOLD_SPACE - 1), now)
        return _Counted(len(counted), len(deltas), bases)

    def _compact(self, buckets: Sequence[Bucket], up_to: int, now: datetime) -> int:
        """Sums each bucket's rows up to ``up_to`` (a fold id every part has done) into one base row,
        SETTLED_COMPACTIONS_PER_RUN buckets a read; returns how many. A bucket with a single such row is left
        as it is: a base would replace it one for one (a write and a delete for nothing), and a lone delta
        tells a reader as much as that base would (a fold that counted a start of the bucket wrote a delta
        into it, so the folds the base would add held none of its starts)."""
        written = 0
        for at in range(0, len(buckets), SETTLED_COMPACTIONS_PER_RUN):
            chunk = buckets[at : at + SETTLED_COMPACTIONS_PER_RUN]
            rows = self.store.read_rollups(chunk)
            bases = []
            for bucket in chunk:
                ttl = ttl_seconds(bucket.end, now, self.settings.retention)
                if ttl > 0 and sum(row.slot <= up_to for row in rows.get(bucket, [])) > 1:
                    bases.append(
                        (bucket, up_to, dict(bucket_state(rows.get(bucket, []), up_to=up_to).counts), ttl)
                    )
            self.store.write_bases(bases)
            written += len(bases)
        return written

    def _finish(self, report: FoldReport, part: int, watermark: int, newest: int) -> int:
        """Moves the stored watermark (``report.watermark``, as the last fold left it) over the empty slots this
        run passed after it: at once when the run folded arrivals, after IDLE_PROGRESS_SLOTS when it folded
        none; never again to where the last fold already moved it; returns it as stored. ``behind_seconds``
        counts from where the run got to (an idle part is not behind)."""
        stored = report.watermark
        if stored is None or (
            watermark > stored
            and (
                report.starts_counted + report.records_counted > 0
                or watermark - stored >= IDLE_PROGRESS_SLOTS
            )
        ):
            self.store.write_progress(part, watermark)
            report.watermark = watermark
        report.behind_seconds = float(newest - watermark)
        return watermark if report.watermark is None else report.watermark


@dataclass
class FamilyBuilders:
    """One builder per rollup family (the starts, and the live-ops families), run one after another on the same
    part: what a part's scheduled function runs. Its report sums their work; its watermark is the oldest of
    theirs, its lag the largest."""

    builders: Sequence[RollupBuilder]
    cache_debts: CacheDebtCollector | None = None
    """Part 0's builder also pays the cache's debts (domain.cache_debt)."""

    def fold(self, part: int = 0, max_slots: int = 120, max_busy_slots: int | None = None) -> FoldReport:
        if part == 0 and self.cache_debts is not None:
            self.cache_debts.collect()
        return _combined([builder.fold(part, max_slots, max_busy_slots) for builder in self.builders])

    def fold_every_part(self, max_slots: int = 120) -> FoldReport:
        return _combined([builder.fold_every_part(max_slots) for builder in self.builders])

    def compact_what_is_left(self, levels: Collection[Level] = LEVELS) -> int:
        return sum(builder.compact_what_is_left(levels) for builder in self.builders)


def _combined(reports: Sequence[FoldReport]) -> FoldReport:
    total = FoldReport()
    for report in reports:
        total.slots_folded += report.slots_folded
        total.starts_counted += report.starts_counted
        total.records_counted += report.records_counted
        total.deltas_written += report.deltas_written
        total.bases_written += report.bases_written
    watermarks = [report.watermark for report in reports if report.watermark is not None]
    total.watermark = min(watermarks, default=None)
    total.behind_seconds = max((report.behind_seconds for report in reports), default=0.0)
    return total


@dataclass(frozen=True)
class _Counted:
    starts: int
    deltas: int
    bases: int


def _deltas(keys: Sequence[StartKey], slot: int, contributions: Contributions) -> dict[Bucket, Counter[str]]:
    deltas: dict[Bucket, Counter[str]] = defaultdict(Counter)
    for key in keys:
        adds = contributions(key, slot)
        for bucket in buckets_of(key.ts):
            deltas[bucket].update(adds)
    return deltas
