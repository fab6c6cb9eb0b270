"""Sessions online and session lengths compared with a brute-force model over random histories: re-sent
halves, ends stored before their starts, ends stamped before their starts, late events (stamped hours or days
back), sessions longer than the open-session limit, builders of every family folding at random moments with
the parts' watermarks drifting apart, two builders of a part, random windows, a read cache in the loop.
In-memory storage; tests/integration/test_live_ops_on_cassandra.py runs the same machinery on Cassandra."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import CompactionTracker, RollupBuilder
from player_sessions.domain.country_starts.records import RELATIVE_ERROR, bin_of, bin_value
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import whole_second_window
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.live_ops import LiveOps
from player_sessions.schema import COMPLETIONS, LENGTHS, STARTS
from player_sessions.settings import Settings
from player_sessions.time_buckets import slot_of, slot_start
from tests.fakes import InMemoryReadCache, InMemorySessionStore, InMemoryStartsStore
from tests.property_depth import examples

SETTINGS = Settings(retention_days=365, open_session_hours=12)
EPOCH = datetime(2026, 6, 30, 22, 58, 41, 250_000, tzinfo=UTC)
COUNTRIES = ["US", "FI", "PK"]
FAMILIES = ("starts", "completions", "lengths")

half = st.fixed_dictionaries(
    {
        "session": st.integers(0, 60),
        "end": st.booleans(),
        # Mostly live (the last minutes), some late (hours or days back), a few ahead of the server clock
        "seconds_before": st.one_of(st.integers(-250, 900), st.integers(0, 20 * 86_400)),
        "millis": st.integers(0, 999),
        # Mostly minutes; some ends stamped before the start, some sessions longer than the limit
        "duration_ms": st.one_of(
            st.integers(0, 3_600_000), st.integers(-600_000, -1), st.integers(12 * 3_600_000, 20 * 3_600_000)
        ),
        "country": st.sampled_from(COUNTRIES),
    }
)
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 2 * 86_400)),
    st.tuples(st.just("tick"), st.integers(1, 40)),
    st.tuples(st.just("ingest"), st.lists(half, min_size=1, max_size=10)),
    st.tuples(
        st.just("fold"),
        st.tuples(
            st.sampled_from(FAMILIES),
            st.integers(1, 200),
            st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
            # A run's last folds take one slot with arrivals each (domain.country_starts.schedule)
            st.sampled_from([None, 1]),
        ),
    ),
    st.tuples(st.just("fold by another builder"), st.tuples(st.sampled_from(FAMILIES), st.integers(0, 3))),
    st.tuples(st.just("online"), st.just(0)),
    st.tuples(st.just("lengths"), st.integers(1, 8760)),
    st.tuples(st.just("starts"), st.integers(1, 8760)),
)


@dataclass
class Session:
    start: datetime
    end: datetime
    country: str
    start_stored_at: datetime | None = None
    end_stored_at: datetime | None = None

    @property
    def completed_at(self) -> datetime | None:
        if self.start_stored_at is None or self.end_stored_at is None:
            return None
        return max(self.start_stored_at, self.end_stored_at)


def arrived_late(stored_at: datetime, ts: datetime) -> bool:
    """As the service tells (records.contributions_of): the start of the arrival second, past the allowance."""
    return slot_start(slot_of(max(stored_at, ts))) - ts > SETTINGS.clock_skew


class History:
    def __init__(self) -> None:
        self.sessions = InMemorySessionStore()
        self.stores = {
            name: InMemoryStartsStore(self.sessions, family)
            for name, family in zip(FAMILIES, (STARTS, COMPLETIONS, LENGTHS), strict=True)
        }
        self.cache = InMemoryReadCache()
        self.clock = FixedClock(EPOCH)
        self.settled = SettledArrivals()
        """The readers' environment: each family's settled arrivals kept from one question to the next."""
        self.trackers = {name: CompactionTracker(compact_after=2) for name in FAMILIES}
        self.model: dict[int, Session] = {}
        self.checks = 0

    @property
    def live_ops(self) -> LiveOps:
        stores = self.stores
        return LiveOps(
            stores["starts"],
            stores["completions"],
            stores["lengths"],
            self.clock,
            SETTINGS,
            self.cache,
            self.settled,
        )

    def ingest(self, items: list[dict]) -> None:
        now = self.clock.now()
        events = []
        for item in items:
            start = (now - timedelta(seconds=item["seconds_before"])).replace(
                microsecond=item["millis"] * 1000
            )
            session = self.model.setdefault(
                item["session"],
                Session(start, start + timedelta(milliseconds=item["duration_ms"]), item["country"]),
            )
            ts = session.end if item["end"] else session.start
            sid = str(uuid.UUID(int=item["session"] + 1))
            event = {"event": "end" if item["end"] else "start", "player_id": "p", "session_id": sid}
            events.append({**event, "ts": ts.isoformat(), "country": session.country})
            if not (now - SETTINGS.retention < ts <= now + SETTINGS.clock_skew):
                continue  # discarded or rejected: the model stores nothing either
            if item["end"] and session.end_stored_at is None:
                session.end_stored_at = now
            if not item["end"] and session.start_stored_at is None:
                session.start_stored_at = now
        ingest_batch(events, store=self.sessions, clock=self.clock, settings=SETTINGS, cache=self.cache)

    def fold(
        self,
        family: str,
        max_slots: int,
        parts: Sequence[int],
        tracker: CompactionTracker,
        max_busy_slots: int | None = None,
    ) -> None:
        builder = RollupBuilder(self.stores[family], self.clock, SETTINGS, cache=self.cache, tracker=tracker)
        for part in parts:
            builder.fold(part, max_slots=max_slots, max_busy_slots=max_busy_slots)

    def online(self) -> None:
        result = self.live_ops.online()
        now = self.clock.now()
        window = whole_second_window(SETTINGS.open_session_hours, now, SETTINGS.retention)
        assert result.window == window
        started = [s for s in self.model.values() if s.start_stored_at and window.start <= s.start <= now]
        expected = Counter(s.country for s in started if s.end_stored_at is None)
        assert dict(result.counts) == dict(expected), now
        late = sum(arrived_late(s.start_stored_at, s.start) for s in started if s.start_stored_at)
        assert result.settled.late == late
        self.checks += 1

    def lengths(self, hours: int) -> None:
        result = self.live_ops.session_lengths(hours)
        now = self.clock.now()
        window = whole_second_window(hours, now, SETTINGS.retention)
        ended = [s for s in self.model.values() if s.completed_at and window.start <= s.end <= now]
        longest = SETTINGS.open_session_hours * 3_600_000
        durations: dict[str, list[int]] = {}
        outside: Counter[str] = Counter()
        for s in ended:
            ms = round((s.end - s.start).total_seconds() * 1000)
            if 0 <= ms <= longest:
                durations.setdefault(s.country, []).append(ms)
            else:
                outside[s.country] += 1
        got = dict(result.countries)
        assert set(got) == set(durations) | set(outside)
        for country, figures in got.items():
            mine = sorted(durations.get(country, []))
            assert (figures.sessions, figures.milliseconds, figures.outside) == (
                len(mine),
                sum(mine),
                outside[country],
            )
            for q in (0.5, 0.9, 0.99):
                estimate = figures.quantile_ms(q)
                if not mine:
                    assert estimate is None
                    continue
                exact = mine[max(1, math.ceil(q * len(mine))) - 1]
                assert estimate is not None
                assert abs(estimate - exact) <= RELATIVE_ERROR * exact + 1e-9
        assert result.total.sessions == sum(len(d) for d in durations.values())
        assert result.settled.late == sum(
            arrived_late(s.completed_at, s.end) for s in ended if s.completed_at
        )
        self.checks += 1

    def starts(self, hours: int) -> None:
        result = CountryStarts(self.stores["starts"], self.clock, SETTINGS, self.cache, self.settled).counts(
            hours
        )
        window = result.window
        whole = whole_second_window(hours, self.clock.now(), SETTINGS.retention)
        started = [
            s for s in self.model.values() if s.start_stored_at and window.start <= s.start <= window.end
        ]
        assert dict(result.counts) == dict(Counter(s.country for s in started))
        # Late starts are counted from the window's first whole second
        late = [s for s in started if s.start >= whole.start and s.start_stored_at]
        assert result.late_starts == sum(arrived_late(s.start_stored_at, s.start) for s in late)
        self.checks += 1


def run(steps) -> int:
    return play(History(), steps).checks


def play(history: History, steps) -> History:
    for kind, argument in steps:
        if kind == "advance":
            history.clock.advance(seconds=argument)
        elif kind == "tick":
            history.clock.advance(seconds=argument / 4)
        elif kind == "ingest":
            history.ingest(argument)
        elif kind == "fold":
            family, max_slots, parts, max_busy_slots = argument
            history.fold(family, max_slots, parts, history.trackers[family], max_busy_slots)
        elif kind == "fold by another builder":
            family, part = argument
            history.fold(family, 500, [part], CompactionTracker(compact_after=3))
        elif kind == "online":
            history.online()
        elif kind == "lengths":
            history.lengths(argument)
        else:
            history.starts(argument)
    return history


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=3, max_size=30))
def test_online_and_session_lengths_equal_a_brute_force_model(steps):
    # Given a random history of halves ingested, folds of every family and clock moves
    # When it is played, asking for the live-ops figures along the way
    # Then each equals the brute-force model's (History.online, .lengths and .starts assert it)
    run(steps)


def test_an_end_stored_before_its_start_closes_the_session_when_the_start_arrives():
    end_first = {"session": 3, "seconds_before": 120, "millis": 0, "duration_ms": 60_000, "country": "FI"}
    steps = [
        ("ingest", [{**end_first, "end": True}]),
        ("online", 0),
        ("lengths", 1),
        ("tick", 20),
        ("ingest", [{**end_first, "end": False}]),
        ("online", 0),
        ("lengths", 1),
        ("tick", 20),
        ("fold", ("completions", 100, [0, 1, 2, 3], None)),
        ("fold", ("lengths", 100, [0, 1, 2, 3], None)),
        ("ingest", [{**end_first, "end": False}, {**end_first, "end": True}]),
        ("online", 0),
        ("lengths", 1),
    ]
    # Given a session's end stored first: no session is open, none has a length
    history = play(History(), steps[:3])
    assert history.live_ops.online().counts == []
    assert history.live_ops.session_lengths(1).countries == []
    # When its start arrives, and later both are re-sent around the builders' folds
    play(history, steps[3:])
    # Then it is never open, and its one minute is its length, once
    assert history.checks == 6
    assert history.live_ops.online().counts == []
    lengths = dict(history.live_ops.session_lengths(1).countries)
    assert (lengths["FI"].sessions, lengths["FI"].mean_ms) == (1, 60_000)


def test_a_length_of_zero_or_of_exactly_s_is_counted_and_one_past_either_end_is_apart():
    # Given four sessions that started 12 h 5 min ago: of 0 ms, of exactly S (12 h), of S and 1 ms, and one
    # ended a second before it started
    lasting = {"AA": 0, "BB": 43_200_000, "CC": 43_200_001, "DD": -1_000}
    sessions = [
        {"session": 10 + n, "seconds_before": 43_500, "millis": 0, "duration_ms": ms, "country": country}
        for n, (country, ms) in enumerate(lasting.items())
    ]
    steps = [
        ("ingest", [{**item, "end": end} for item in sessions for end in (False, True)]),
        ("lengths", 24),
        ("tick", 20),
        ("fold", ("lengths", 100, [0, 1, 2, 3], None)),
        ("lengths", 24),
    ]
    # When their lengths are asked for, before and after the builders fold them
    history = play(History(), steps)
    # Then the closed range [0, S] holds the first two, and the other two are reported apart
    assert history.checks == 2
    lengths = dict(history.live_ops.session_lengths(24).countries)
    assert {country: (d.sessions, d.milliseconds, d.outside) for country, d in lengths.items()} == {
        "AA": (1, 0, 0),
        "BB": (1, 43_200_000, 0),
        "CC": (0, 0, 1),
        "DD": (0, 0, 1),
    }


def test_every_duration_is_within_the_relative_error_of_its_bin():
    for ms in [1, 2, 3, 7, 999, 1000, 1001, 59_999, 60_000, 3_600_000, 43_200_000, *range(1, 5000, 37)]:
        assert abs(bin_value(bin_of(ms)) - ms) <= RELATIVE_ERROR * ms + 1e-9
    assert bin_value(bin_of(0)) == 0
