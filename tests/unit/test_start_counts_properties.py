"""Counts and listings compared with a brute-force model over random histories: re-sent and contradicting
starts, late starts (stamped hours or days back), starts stamped ahead of the server clock, the builder folding
at random moments and while a count reads, a builder that folds a slot before a slow arrival write lands,
readers that kept that slot's arrivals before it landed (domain.country_starts.settled),
arrivals stored with and without what ingest read before them, players erased (their starts
counted still, never listed again; their replays discarded), and random windows, with a read cache in the loop. In-memory storage; the integration tests run the same machinery on the real Cassandra."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts, window_for
from player_sessions.domain.country_starts.builder import (
    CompactionTracker,
    FoldReport,
    RollupBuilder,
    pause_after,
)
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import Window, plan_window
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.privacy import erase_player
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import Arrival, ArrivalWrite, EventWrite, SessionHalves, StartKey
from player_sessions.read_counts import metered
from player_sessions.settings import Settings
from player_sessions.time_buckets import LEVELS, Bucket, Level, cover, last_foldable_slot, slot_of
from tests.fakes import (
    InMemoryPlayerDataStore,
    InMemoryReadCache,
    InMemorySessionStore,
    InMemoryStartsStore,
    OnceAfter,
)
from tests.property_depth import examples

SETTINGS = Settings(retention_days=365)
EPOCH = datetime(2026, 3, 30, 7, 13, 21, 250_000, tzinfo=UTC)
COUNTRIES = ["US", "FI", "PK", "BR"]
PLAYERS = ["p", "q", "r"]

start_event = st.fixed_dictionaries(
    {
        # Mostly the last seconds and minutes (live traffic), some hours or days back (late), a few ahead.
        "seconds_before": st.one_of(st.integers(-200, 300), st.integers(0, 90 * 86_400)),
        "millis": st.integers(0, 999),
        "country": st.sampled_from(COUNTRIES),
        "session": st.integers(0, 300),
        "contradicts": st.booleans(),
    }
)
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 5 * 86_400)),
    st.tuples(st.just("tick"), st.integers(1, 20)),
    st.tuples(st.just("ingest"), st.lists(start_event, min_size=1, max_size=10)),
    # Arrivals stored without what was read before them (a loader's, or older ones): readers read their marks
    st.tuples(st.just("ingest unseen"), st.lists(start_event, min_size=1, max_size=10)),
    st.tuples(st.just("slow ingest"), st.lists(start_event, min_size=1, max_size=4)),
    # The same, but only the readers keep the slots settled by then: a builder folds them, the slow write's
    # arrivals included, at a later step
    st.tuples(st.just("slow ingest read first"), st.lists(start_event, min_size=1, max_size=4)),
    # Some parts' builders fold, others do not: the parts' watermarks drift apart
    st.tuples(
        st.just("fold"),
        st.tuples(st.integers(1, 200), st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True)),
    ),
    # A run's last folds, of one slot with arrivals each (domain.country_starts.schedule)
    st.tuples(
        st.just("fold one busy slot"),
        st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
    ),
    # A second builder of a part (another gateway's, or a run that overlaps), with its own compaction counts,
    # that may resume from a watermark it read long ago (a frozen process thawing)
    st.tuples(
        st.just("fold by another builder"),
        st.tuples(st.integers(1, 200), st.integers(0, 5), st.integers(0, 3)),
    ),
    # A builder that dies after some of its writes (the next run of its part resumes from its watermark)
    st.tuples(st.just("interrupted fold"), st.tuples(st.integers(0, 3), st.integers(1, 12))),
    st.tuples(st.just("count"), st.integers(1, 8760)),
    # Builders fold while a count reads: right after it read the watermarks, the arrivals, or sent the rollups'
    # requests, Cassandra reading the rollups before the arrivals or after them
    st.tuples(
        st.just("count racing a fold"),
        st.tuples(
            st.integers(1, 8760),
            st.sampled_from(("read_progress", "read_arrivals_within", "start_reading_rollups")),
            st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
            st.booleans(),
        ),
    ),
    # A player's erasure: their starts stay counted, without them, and leave the listings; their replays of
    # events stamped before it are discarded
    st.tuples(st.just("erase"), st.sampled_from(PLAYERS)),
    st.tuples(
        st.just("list"), st.tuples(st.sampled_from(COUNTRIES), st.integers(1, 8760), st.integers(1, 9))
    ),
)


class RacingSessionStore(InMemorySessionStore):
    """Lets a builder fold, on a clock seconds ahead, just before a batch's arrivals land (a slow write).

    Its sessions read back empty: every batch is as if written at the same moment as every other, so none sees
    what the others stored of a session, and a second start of one with another ts or country is stored too
    (domain.session_identity turns it away only when a batch sees the first): the counts must equal the starts
    stored, whatever they are."""

    def __init__(self) -> None:
        super().__init__()
        self.before_arrivals = None

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        return {}

    def write_events(self, writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite]) -> None:
        if self.before_arrivals is not None:
            hook, self.before_arrivals = self.before_arrivals, None
            hook()
        super().write_events(writes, arrivals)


class StaleProgressStore:
    """The real fake store, but the watermarks, the first time, as a builder read them long ago (a process
    resumed); read again, they are the current ones."""

    def __init__(self, inner: InMemoryStartsStore, seen: dict[int, int]) -> None:
        self._inner = inner
        self._seen: dict[int, int] | None = seen

    def read_progress(self, parts: Sequence[int]) -> dict[int, int]:
        if self._seen is None:
            return self._inner.read_progress(parts)
        seen, self._seen = self._seen, None
        return {part: seen[part] for part in parts if part in seen}

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class CrashingStore:
    """The real fake store, but the builder's process dies (its request fails) at its n-th write."""

    WRITES = ("claim_fold", "write_marks", "write_deltas", "write_progress", "write_bases")

    def __init__(self, inner: InMemoryStartsStore, writes_before_crash: int) -> None:
        self._inner = inner
        self._left = writes_before_crash

    def __getattr__(self, name: str):
        method = getattr(self._inner, name)
        if name not in self.WRITES:
            return method

        def write(*args, **kwargs):
            self._left -= 1
            if self._left < 0:
                raise DatabaseUnavailableError("the builder died")
            return method(*args, **kwargs)

        return write


class History:
    def __init__(self) -> None:
        self.sessions = RacingSessionStore()
        self.starts = InMemoryStartsStore(self.sessions)
        self.cache = InMemoryReadCache()
        self.clock = FixedClock(EPOCH)
        self.settled = SettledArrivals()
        """The readers' environment: the arrivals of settled slots kept from one count or listing to the next."""
        # Compacting after one or two deltas: bases, and late rows under them, in every history
        self.tracker = CompactionTracker(compact_after=2)
        self.other_tracker = CompactionTracker(compact_after=3)
        self.watermarks: list[dict[int, int]] = []
        self.truth: set[StartKey] = set()
        """The starts stored and listed."""
        self.anonymous: set[StartKey] = set()
        """The starts of erased players: counted, never listed."""
        self.players: dict[StartKey, str] = {}
        self.erased_at: dict[str, datetime] = {}
        self.first_ts: dict[int, tuple[datetime, str]] = {}
        self.checks = 0

    def batch(self, items: list[dict]) -> list[dict]:
        now = self.clock.now()
        events = []
        in_batch: dict[int, tuple[datetime, str]] = {}
        """Each session's start as the batch's first event of it says: a later one that contradicts it is
        rejected (domain.session_identity)."""
        for item in items:
            ts = now - timedelta(seconds=item["seconds_before"])
            ts = ts.replace(microsecond=item["millis"] * 1000)
            ts, country = (
                (ts, item["country"])
                if item["contradicts"]
                else self.first_ts.setdefault(item["session"], (ts, item["country"]))
            )
            if not (now - SETTINGS.retention < ts <= now + SETTINGS.clock_skew):
                continue
            sid = uuid.UUID(int=item["session"] + 1)
            player = PLAYERS[item["session"] % len(PLAYERS)]
            erased_at = self.erased_at.get(player)
            if (erased_at is None or ts > erased_at) and in_batch.setdefault(
                item["session"], (ts, country)
            ) == (
                ts,
                country,
            ):
                key = StartKey(sid, ts, country)
                self.truth.add(key)
                self.anonymous.discard(key)
                self.players[key] = player
            events.append(
                {
                    "event": "start",
                    "player_id": player,
                    "session_id": str(sid),
                    "ts": ts.isoformat(),
                    "country": country,
                }
            )
        return events

    def fold(
        self,
        max_slots: int,
        parts: Sequence[int] = tuple(SETTINGS.partition.all_parts),
        stale: int | None = None,
        crash_after: int | None = None,
        max_busy_slots: int | None = None,
    ) -> None:
        for part in parts:
            store: object = self.starts
            if stale is not None:
                # The other builder starts from watermarks it read ``stale`` folds ago
                store = StaleProgressStore(
                    self.starts, self.watermarks[-1 - stale] if len(self.watermarks) > stale else {}
                )
            if crash_after is not None:
                store = CrashingStore(self.starts, crash_after)
            try:
                RollupBuilder(
                    store,
                    self.clock,
                    SETTINGS,
                    cache=self.cache,
                    tracker=self.tracker if stale is None else self.other_tracker,
                ).fold(part, max_slots=max_slots, max_busy_slots=max_busy_slots)
            except DatabaseUnavailableError:
                assert crash_after is not None
        self.watermarks.append(dict(self.starts.db.progress))

    def ingest(self, items: list[dict], slow: bool, seen: bool = True, fold_first: bool = True) -> None:
        events = self.batch(items)
        if not events:
            return
        if slow:

            def builder_ahead() -> None:
                # The write takes four seconds: a builder folds every slot settled by then, without it (unless
                # ``fold_first`` is false), and the readers keep those slots' arrivals, without it too.
                self.clock.advance(seconds=4)
                if fold_first:
                    self.fold(500)
                self.reader().counts(1)
                self.reader().page("US", 1, limit=5)

            self.sessions.before_arrivals = builder_ahead
        ingest_batch(
            events,
            store=self.sessions,
            clock=self.clock,
            settings=SETTINGS,
            cache=self.cache,
            counted=self.starts if seen else None,
        )

    def erase(self, player: str) -> None:
        store = InMemoryPlayerDataStore(self.sessions)
        receipt = erase_player(player, store=store, cache=self.cache, clock=self.clock, settings=SETTINGS)
        assert receipt.finished
        self.erased_at[player] = receipt.asked_at
        theirs = {key for key in self.truth if self.players[key] == player}
        self.truth -= theirs
        self.anonymous |= theirs

    def count(self, hours: int, racing: tuple[str, Sequence[int], bool] | None = None) -> None:
        store: object = self.starts
        if racing is not None:
            after, parts, self.starts.rollups_read_first = racing
            store = OnceAfter(self.starts, after, lambda: self.fold(500, parts))
        try:
            result = CountryStarts(store, self.clock, SETTINGS, self.cache, self.settled).counts(hours)
        finally:
            self.starts.rollups_read_first = True
        window = result.window
        counted = self.truth | self.anonymous
        expected = Counter(key.country for key in counted if window.start <= key.ts <= window.end)
        assert dict(result.counts) == dict(expected), (hours, self.clock.now())
        self.checks += 1

    def reader(self) -> CountryStarts:
        return CountryStarts(self.starts, self.clock, SETTINGS, self.cache, self.settled)

    def list(self, country: str, hours: int, limit: int) -> None:
        listed, cursor = [], None
        while True:
            page = self.reader().page(country, hours, limit=limit, cursor=cursor)
            listed += [(row.ts, row.session_id) for row in page.starts]
            cursor = page.next_cursor
            if cursor is None:
                break
        window = page.window
        expected = sorted(
            (
                (key.ts, key.session_id)
                for key in self.truth
                if key.country == country and window.start <= key.ts <= window.end
            ),
            key=lambda item: (-item[0].timestamp(), item[1]),
        )
        assert listed == expected
        self.checks += 1


def run(steps) -> int:
    history = History()
    for kind, argument in steps:
        if kind == "advance":
            history.clock.advance(seconds=argument)
        elif kind == "tick":
            history.clock.advance(seconds=argument / 4)
        elif kind in ("ingest", "slow ingest", "ingest unseen", "slow ingest read first"):
            history.ingest(
                argument,
                slow=kind.startswith("slow ingest"),
                seen=kind != "ingest unseen",
                fold_first=kind == "slow ingest",
            )
        elif kind == "fold":
            history.fold(argument[0], parts=argument[1])
        elif kind == "fold one busy slot":
            history.fold(120, parts=argument, max_busy_slots=1)
        elif kind == "fold by another builder":
            history.fold(argument[0], parts=[argument[2]], stale=argument[1])
        elif kind == "interrupted fold":
            history.fold(500, parts=[argument[0]], crash_after=argument[1])
        elif kind == "count":
            history.count(argument)
        elif kind == "count racing a fold":
            history.count(argument[0], racing=(argument[1], argument[2], argument[3]))
        elif kind == "erase":
            history.erase(argument)
        else:
            history.list(*argument)
    return history.checks


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=3, max_size=30))
def test_counts_and_listings_equal_a_brute_force_model(steps):
    # Given a random history of ingests, folds and clock moves
    # When it is played, counting and listing along the way
    # Then every count and listing equals the brute-force model's (History.count and History.list assert it)
    run(steps)


def test_a_builder_resumed_from_an_old_watermark_counts_nothing_new_in_a_slot_folded_since():
    # Given starts folded, then a batch whose arrivals land in that folded slot (a slow write: its writer puts
    # them again into a newer slot), one of them new
    start = {"seconds_before": 0, "millis": 0, "country": "US", "session": 0, "contradicts": False}
    steps = [
        ("ingest", [start, {**start, "session": 1}]),
        ("slow ingest", [start, {**start, "session": 12}]),
        # When a builder of part 0 that read the watermarks before any fold re-folds the slot
        ("fold by another builder", (22, 1, 0)),
        # Then each start is counted once (History.count asserts it: the new one was lost under a base)
        ("count", 1),
        ("fold", (100, [0, 1, 2, 3])),
        ("count", 1),
    ]
    assert run(steps) == 2


def test_a_part_that_passed_empty_slots_without_storing_its_watermark_compacts_nothing_after_it():
    # Given the clock six minutes before an hour ends, starts of parts 0 to 2 that land after a builder run
    # folded their slot (their writers put them again into a newer slot)
    start = {"seconds_before": 0, "millis": 0, "country": "US", "session": 1, "contradicts": False}
    steps = [
        ("advance", 63_647),
        ("ingest", [start]),
        ("slow ingest", [{**start, "session": session} for session in (3, 4, 300)]),
        ("tick", 13),
        # When the next runs fold those, part 3 passes its empty slots without storing its watermark (fewer than
        # IDLE_PROGRESS_SLOTS), and then a start of part 3 lands, late, in one of those slots
        ("slow ingest", [{**start, "session": 0}]),
        ("advance", 342),
        # Then part 3's next run counts it, and no base compacted before covers its fold: the whole hour counts
        # the five starts (four, when the base summed folds up to part 3's watermark as it had not stored it)
        ("fold", (500, [0, 1, 2, 3])),
        ("count", 2),
    ]
    assert run(steps) == 1


def test_a_late_start_into_folded_buckets_is_counted_once():
    # Given a start three days old, folded into the rollups, and counted
    late = {"seconds_before": 3 * 86_400, "millis": 5, "country": "FI", "session": 1, "contradicts": False}
    steps = [
        ("ingest", [late]),
        ("tick", 20),
        ("fold", (100, [0, 1, 2, 3])),
        ("count", 8760),
        # When another late start lands in the same, already folded, hour, and the first is re-sent
        ("ingest", [{**late, "session": 2, "millis": 7}, late]),
        # Then each is counted once, before and after the builder folds the newcomers
        ("count", 8760),
        ("count", 100),
        ("tick", 20),
        ("fold", (100, [0, 1, 2, 3])),
        ("count", 8760),
        ("list", ("FI", 8760, 1)),
    ]
    assert run(steps) == 5


def test_an_arrival_acknowledged_after_its_slot_was_folded_is_counted():
    # Given a builder that folds, on a clock four seconds ahead, just before a slow batch's arrivals land
    live = {"seconds_before": 0, "millis": 0, "country": "US", "session": 7, "contradicts": False}
    steps = [
        ("slow ingest", [live]),
        ("count", 1),
        ("tick", 20),
        ("fold", (100, [0, 1, 2, 3])),
        # Then the start is counted, read from the tail at first and from the rollups after the next fold
        ("count", 1),
        ("list", ("US", 1, 5)),
    ]
    assert run(steps) == 3


def test_a_windows_cover_tiles_it_with_few_buckets():
    # Given year-long and hour-long windows ending at an arbitrary moment
    now = datetime(2026, 11, 28, 6, 49, 57, 123_000, tzinfo=UTC)
    for hours, most in ((1, 28), (24, 51), (168, 57), (8760, 91)):
        window = window_for(hours, now, SETTINGS.retention)
        # When each window is planned with a cutoff three seconds back
        plan = plan_window(window, now - timedelta(seconds=3))
        # Then the buckets tile [first whole second, cutoff) without gaps or overlap, and are few
        assert plan.buckets[0].start == window.start.replace(microsecond=0) + timedelta(seconds=1)
        for earlier, later in pairwise(plan.buckets):
            assert earlier.end == later.start
        assert plan.buckets[-1].end == plan.rolled_until
        assert len(plan.buckets) <= most
        assert plan.edge == (window.start, plan.buckets[0].start)


@settings(max_examples=examples(300), deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)),
    seconds=st.integers(min_value=1, max_value=800 * 86_400),
    whole=st.sampled_from([Level.SECOND, Level.MINUTE, Level.HOUR, Level.DAY, Level.MONTH]),
)
def test_each_bucket_of_a_cover_is_the_coarsest_aligned_one_that_fits(start, seconds, whole):
    # Given a span between whole seconds, its start often on a whole minute, hour, day or month
    begin = whole.floor(start.replace(tzinfo=UTC, microsecond=0))
    end = begin + timedelta(seconds=seconds)
    # When it is covered
    buckets = cover(begin, end)
    # Then the buckets tile it, and no coarser level was aligned at a bucket's start and ended in time
    assert buckets[0].start == begin and buckets[-1].end == end
    for earlier, later in pairwise(buckets):
        assert earlier.end == later.start
    for bucket in buckets:
        coarser = LEVELS[LEVELS.index(bucket.level) + 1 :]
        assert not [
            level
            for level in coarser
            if level.floor(bucket.start) == bucket.start and level.after(bucket.start) <= end
        ]


def test_cover_uses_every_level_it_can():
    # Given a span from five seconds before an hour, two months back, to ten past three
    start, end = datetime(2026, 1, 30, 22, 59, 55, tzinfo=UTC), datetime(2026, 4, 2, 3, 10, 20, tzinfo=UTC)
    # When it is covered with buckets
    levels = Counter(bucket.level for bucket in cover(start, end))
    # Then the largest levels that fit are used, and the smaller ones only at the edges
    assert levels == Counter(
        {
            Level.SECOND: 5,
            Level.HOUR: 1 + 3,
            Level.DAY: 1 + 1,
            Level.MONTH: 2,
            Level.TEN_MINUTES: 1,
            Level.TEN_SECONDS: 2,
        }
    )


def test_window_never_reaches_past_the_retention():
    # Given a 30-day retention
    now = datetime(2026, 11, 28, tzinfo=UTC)
    short = Settings(retention_days=30)
    # When a year-long window is asked for
    window = window_for(8760, now, short.retention)
    # Then it covers the retention only
    assert window == Window(now - timedelta(days=30), now)


def test_reads_are_metered():
    # Given a folded start
    history = History()
    history.ingest(
        [{"seconds_before": 60, "millis": 0, "country": "US", "session": 1, "contradicts": False}], False
    )
    history.clock.advance(seconds=5)
    history.fold(100)
    # When a count runs inside a metered block
    with metered() as reads:
        history.count(24)
    # Then its reads are counted: the watermark, and the rollup rows holding the start
    assert reads.rows >= 2
    assert reads.partitions >= 2


def test_an_arrival_left_without_its_start_row_by_a_half_failed_batch_is_never_counted():
    # Given a batch whose arrival was written but whose start row was not (Cassandra went away in between)
    history = History()
    sid = uuid.uuid4()
    key = StartKey(sid, EPOCH.replace(microsecond=0) - timedelta(minutes=3), "BR")
    history.sessions.write_arrivals(
        [ArrivalWrite(Arrival(slot_of(EPOCH), key), 0, 86_400, "p", SETTINGS.player_hash("p"))]
    )
    # When the builder folds its slot
    history.clock.advance(seconds=4)
    history.fold(100)
    # Then nothing is counted or listed for it, from the rollups or the tail
    history.count(1)
    history.list("BR", 1, 5)
    assert history.starts.db.marks == {}


def three_deltas_in_each_bucket_of_one_second() -> tuple[InMemoryStartsStore, FixedClock, RollupBuilder]:
    """Starts stamped in one second and stored over three seconds, then folded: a delta per arrival second in
    each bucket holding that second, three, fewer than a compaction waits for, none settled yet."""
    sessions = InMemorySessionStore()
    starts, clock = InMemoryStartsStore(sessions), FixedClock(EPOCH)
    builder = RollupBuilder(
        starts, clock, SETTINGS, tracker=CompactionTracker(compact_after=4, settle_slots=5)
    )
    for session in range(3):
        event = {"event": "start", "player_id": "p", "session_id": str(uuid.UUID(int=session + 1))}
        ingest_batch(
            [{**event, "ts": EPOCH.replace(microsecond=0).isoformat(), "country": "FI"}],
            store=sessions,
            clock=clock,
            settings=SETTINGS,
        )
        clock.advance(seconds=1)
    clock.advance(seconds=2)
    builder.fold_every_part()
    assert {len(rows) for rows in starts.tables.rollups.values()} == {3}
    return starts, clock, builder


def test_a_bucket_that_stopped_changing_is_compacted_to_one_row():
    # Given three deltas in each bucket of one second's starts
    starts, clock, builder = three_deltas_in_each_bucket_of_one_second()

    # When the builder runs again after five quiet seconds
    clock.advance(seconds=6)
    report = builder.fold_every_part()

    # Then each of those buckets is one base row with the same count
    assert report.bases_written == 7
    assert all(
        [row.base for row in rows.values()] == [True] and dict(next(iter(rows.values())).counts) == {"FI": 3}
        for rows in starts.tables.rollups.values()
    )


def test_a_caught_up_builder_sleeps_until_its_next_slot_may_be_folded():
    # Given runs that left a builder caught up, and behind
    caught_up, behind = FoldReport(behind_seconds=0.0), FoldReport(behind_seconds=3.0)
    second = datetime(2026, 3, 30, 7, 13, 21, tzinfo=UTC)

    # Then, caught up 0.6 s into a slot, it sleeps until the slot before settles (1.5 s after it ended): 0.9 s
    # and the margin; caught up as that slot settles, until this one does, a whole slot; behind, not at all
    assert pause_after(caught_up, second + timedelta(seconds=0.6)) == pytest.approx(0.91)
    assert last_foldable_slot(second + timedelta(seconds=1.5)) == slot_of(second) - 1
    assert pause_after(caught_up, second + timedelta(seconds=1.5)) == pytest.approx(1.01)
    assert pause_after(behind, second + timedelta(seconds=0.6)) == 0.0


def test_a_tracker_keeps_a_buckets_newest_delta_when_an_older_slot_is_noted_after_it():
    # Given a tracker shared by every part's folds (a tool folding each part in turn): a month's delta of
    # slot 101 noted, then one of slot 100
    tracker = CompactionTracker(compact_after=4, settle_slots=5)
    month = Bucket(Level.MONTH, datetime(2026, 3, 1, tzinfo=UTC))
    tracker.note([month], slot=101, done=0)
    tracker.note([month], slot=100, done=0)

    # Then a compaction through slot 100 leaves the month tracked (its delta of 101 is not summed yet), and
    # one through 101 takes it
    assert tracker.done_through(100, LEVELS) == []
    assert tracker.done_through(101, LEVELS) == [month]


def test_a_settled_bucket_holding_one_row_is_left_as_it_is():
    # Given one start folded: one delta in each of its seven buckets
    sessions = InMemorySessionStore()
    starts, clock = InMemoryStartsStore(sessions), FixedClock(EPOCH)
    builder = RollupBuilder(
        starts, clock, SETTINGS, tracker=CompactionTracker(compact_after=4, settle_slots=5)
    )
    event = {"event": "start", "player_id": "p", "session_id": str(uuid.UUID(int=1)), "country": "FI"}
    ingest_batch([{**event, "ts": EPOCH.isoformat()}], store=sessions, clock=clock, settings=SETTINGS)
    clock.advance(seconds=3)
    assert builder.fold_every_part().deltas_written == 7

    # When the builder runs again once they settled, and compacts what it leaves before it stops
    clock.advance(seconds=6)
    written = builder.fold_every_part().bases_written + builder.compact_what_is_left()

    # Then no base was written (it would replace each delta one for one), and the start is counted once
    assert written == 0
    assert [[row.base for row in rows.values()] for rows in starts.tables.rollups.values()] == [[False]] * 7
    counts = CountryStarts(starts, clock, SETTINGS).counts(1)
    assert dict(counts.counts) == {"FI": 1}


def test_a_builder_about_to_stop_compacts_every_bucket_it_left_deltas_in():
    # Given three deltas in each bucket of one second's starts, just folded
    starts, _clock, builder = three_deltas_in_each_bucket_of_one_second()

    # When it compacts what it leaves, as a builder does before it stops (its tracker dies with it)
    written = builder.compact_what_is_left()

    # Then every bucket it wrote to is one base row with the same count, and nothing is left to compact
    assert written == 7
    assert all(
        [row.base for row in rows.values()] == [True] and dict(next(iter(rows.values())).counts) == {"FI": 3}
        for rows in starts.tables.rollups.values()
    )
    assert builder.compact_what_is_left() == 0
