"""Each scheduled run of the builder folds until just before its part's next run is due, counted from when
EventBridge scheduled it, and compacts what it leaves before its last folds when it must, so that a part goes
unfolded at the handoff only until the next run, not for whatever a fixed run time or the compaction leaves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.rollup_builder.handler import lambda_handler
from player_sessions.bootstrap import use_services
from player_sessions.domain.country_starts.schedule import (
    RETURN_MARGIN,
    SCHEDULE_PERIOD,
    fold_until,
    run_until_handoff,
    scheduled_at,
)
from player_sessions.domain.ingest import ingest_batch
from player_sessions.time_buckets import start_shard
from player_sessions_local.gateway.in_process import LocalLambdaContext
from tests.fakes import in_memory_services

NOW = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"part": 0, "scheduled_at": "2026-11-28T10:00:00Z"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0, "scheduled_at": "2026-11-28T11:00:00+01:00"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0, "scheduled_at": "2026-11-28T10:00:00"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0}, None),
        ({"part": 0, "scheduled_at": "soon"}, None),
        ({"part": 0, "scheduled_at": 1764324000}, None),
    ],
)
def test_a_run_reads_when_it_was_scheduled_from_its_event(event, expected):
    assert scheduled_at(event) == expected


def test_a_run_stops_folding_a_return_margin_before_its_parts_next_run_is_due():
    scheduled = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    # Delivered on time or late, a run stops at the same moment: before the next run of its part arrives
    for delivered_after in (timedelta(0), timedelta(seconds=2), timedelta(seconds=40)):
        assert fold_until(scheduled, scheduled + delivered_after) == scheduled + timedelta(seconds=59.5)
    # A run whose event says nothing of its schedule, or one not yet due by this clock, counts from now
    assert fold_until(None, NOW) == NOW + timedelta(seconds=59.5)
    assert fold_until(NOW + timedelta(seconds=1), NOW) == NOW + timedelta(seconds=59.5)


class _Run:
    """A run on a timeline of its own: folds that take ``fold_seconds`` each (``one_slot_seconds`` when asked
    for one slot), slots that settle once a second at ``settle_phase`` past each whole second (None: the run is
    behind, and folds again at once), a compaction that takes ``compact_seconds``; it records what it did when,
    in seconds from its start, and must stop folding by ``until``."""

    def __init__(
        self,
        *,
        until,
        fold_seconds,
        compact_seconds,
        settle_phase,
        stop_at=None,
        first_fold_seconds=None,
        one_slot_seconds=None,
    ):
        self.now, self.until, self.stop_at = 0.0, until, stop_at
        self.first_fold_seconds = fold_seconds if first_fold_seconds is None else first_fold_seconds
        self.one_slot_seconds = fold_seconds if one_slot_seconds is None else one_slot_seconds
        self.fold_seconds, self.compact_seconds, self.settle_phase = (
            fold_seconds,
            compact_seconds,
            settle_phase,
        )
        self.folds: list[tuple[float, float]] = []
        self.one_slot_folds: list[tuple[float, float]] = []
        self.compactions: list[float] = []

    def seconds_left(self) -> float:
        return self.until - self.now

    def fold(self, one_slot: bool) -> float:
        if one_slot:
            seconds = self.one_slot_seconds
        else:
            seconds = self.fold_seconds if self.folds else self.first_fold_seconds
        self.folds.append((self.now, self.now + seconds))
        if one_slot:
            self.one_slot_folds.append(self.folds[-1])
        self.now += seconds
        if self.settle_phase is None:
            return 0.0
        next_settle = int(self.now - self.settle_phase) + 1 + self.settle_phase
        return next_settle - self.now

    def compact(self) -> None:
        self.compactions.append(self.now)
        self.now += self.compact_seconds

    def wait(self, seconds: float) -> bool:
        if self.stop_at is not None and self.now + seconds >= self.stop_at:
            self.now = self.stop_at
            return True
        self.now += seconds
        return False

    def run(self) -> _Run:
        run_until_handoff(self.seconds_left, self.fold, self.compact, self.wait)
        return self


def test_a_run_folds_each_settled_slot_and_compacts_after_its_last_fold_when_that_fits():
    # Given a run that must stop folding at 59.5 s, slots settling at 0.2 s past each second, folds of 0.35 s
    run = _Run(until=59.5, fold_seconds=0.35, compact_seconds=0.35, settle_phase=0.2).run()
    # Then it folds at once and at each slot's settling after its first fold, up to the last whose fold ends
    # in time (58.2 s: one at 59.2 s would not), and compacts after that one, when it ends (58.55 s)
    assert [round(start, 6) for start, _ in run.folds] == [0.0] + [second + 0.2 for second in range(1, 59)]
    assert run.compactions == [pytest.approx(58.55)]
    assert run.now <= run.until


@pytest.mark.parametrize("settle_phase", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
def test_a_run_compacts_before_its_last_fold_when_both_would_not_fit_after_it(settle_phase):
    # Given folds of 0.45 s and a compaction as long, whatever the slots' phase to the run's schedule
    run = _Run(until=59.5, fold_seconds=0.45, compact_seconds=0.45, settle_phase=settle_phase).run()
    last_start, last_end = run.folds[-1]
    # Then its last fold is the last that ends in time: the slot settling after it would not
    assert last_end <= run.until
    assert last_start + 1 + 0.45 > run.until
    # And the compaction came once, after the other folds: before that last fold if it would not fit after it
    (compacted,) = run.compactions
    assert run.folds[-2][1] <= compacted
    if last_end + 0.45 > run.until:
        assert compacted + 0.45 <= last_start
    assert run.now <= run.until


def test_a_long_first_fold_does_not_keep_a_run_from_its_last_settled_slot():
    # Given a run whose first fold catches up for 3 s (what the handoff left), then folds of 0.45 s
    run = _Run(
        until=59.5, fold_seconds=0.45, compact_seconds=0.45, settle_phase=0.8, first_fold_seconds=3.0
    ).run()
    # Then it still folds the slot settling at 58.8 s (ending at 59.25 s), a second later than if it expected
    # every fold to take 3 s; its compaction came before, in the pause after the fold at 57.8 s
    assert run.folds[-1] == (pytest.approx(58.8), pytest.approx(59.25))
    assert run.compactions == [pytest.approx(58.25)]


def test_a_run_that_is_behind_folds_one_slot_at_a_time_after_its_compaction_up_to_its_handoff():
    # Given a run that is behind: a fold takes every settled slot in 2.3 s, a fold of one slot 0.8 s
    run = _Run(
        until=59.5, fold_seconds=2.3, compact_seconds=0.5, settle_phase=None, one_slot_seconds=0.8
    ).run()
    (compacted,) = run.compactions
    # Then it compacts once, when two folds as long as its longest would no longer fit (at 55.2 s, 4.3 s left)
    assert compacted == pytest.approx(55.2)
    # And then folds one slot at a time: the first expected to take as long as its longest fold, the next as
    # long as the first one-slot fold. Its last ends 0.6 s before it must stop, where one more fold of every
    # settled slot (2.3 s, ending at 58.0 s) would have left 1.5 s
    assert run.one_slot_folds == [
        (pytest.approx(start), pytest.approx(start + 0.8)) for start in (55.7, 56.5, 57.3, 58.1)
    ]
    assert run.folds[-1] == run.one_slot_folds[-1]
    assert len(run.folds) == 24 + 4


def test_a_run_asked_to_stop_compacts_what_it_leaves_and_returns():
    run = _Run(until=59.5, fold_seconds=0.3, compact_seconds=0.3, settle_phase=0.2, stop_at=10.0).run()
    assert [round(start, 6) for start, _ in run.folds] == [0.0] + [second + 0.2 for second in range(1, 10)]
    assert run.compactions == [10.0]


def test_a_run_with_no_time_left_folds_nothing_and_compacts_what_an_earlier_run_left():
    run = _Run(until=0.0, fold_seconds=0.3, compact_seconds=0.3, settle_phase=0.2).run()
    assert run.folds == []
    assert run.compactions == [0.0]


def test_a_fold_of_one_slot_with_arrivals_passes_the_empty_slots_before_it_and_stops_after_it():
    # Given three starts of part 0 stored three seconds apart, every slot settled since
    services = in_memory_services(NOW)
    partition = services.settings.partition
    sessions = (
        session
        for session in (uuid.UUID(int=n) for n in range(1, 1_000))
        if partition.part_of(start_shard(session, partition.shards)) == 0
    )
    for _ in range(3):
        start = {"player_id": "p-one-slot", "event": "start", "session_id": str(next(sessions))}
        start |= {"ts": services.clock.now().isoformat(), "country": "FI"}
        ingest_batch([start], store=services.sessions, clock=services.clock, settings=services.settings)
        services.clock.advance(seconds=3)
    services.clock.advance(seconds=5)
    builder = services.rollup_builder()
    # When part 0 folds one slot with arrivals at a time
    reports = [builder.fold(0, max_busy_slots=1) for _ in range(4)]
    # Then each of the first three counts one start; the fourth passes the empty slots to the newest settled one
    assert [report.starts_counted for report in reports] == [1, 1, 1, 0]
    assert reports[2].behind_seconds > 0
    assert reports[3].behind_seconds == 0
    assert services.country_starts.counts(1).counts == [("FI", 3)]


def _stored_start(services) -> None:
    start = {
        "player_id": "p-schedule",
        "event": "start",
        "session_id": str(uuid.UUID(int=7)),
        "ts": (NOW - timedelta(seconds=20)).isoformat(),
        "country": "FI",
    }
    services.clock.advance(seconds=-10)
    ingest_batch([start], store=services.sessions, clock=services.clock, settings=services.settings)
    services.clock.advance(seconds=10)


def _run_every_part(services, event_extra: dict[str, str]) -> int:
    folded = 0
    with use_services(services):
        for part in services.settings.partition.all_parts:
            report = lambda_handler(
                {"part": part, **event_extra},
                LocalLambdaContext(function_name="rollup_builder", timeout_ms=60_000),
            )
            folded += report["starts_counted"]
    return folded


def test_a_run_delivered_when_its_parts_next_one_is_due_folds_nothing_and_leaves_it_to_that_one():
    # Given a start stored ten seconds ago (its slot long settled)
    services = in_memory_services(NOW)
    _stored_start(services)
    # When each part's run arrives a whole period after it was scheduled
    late = (NOW - SCHEDULE_PERIOD).isoformat()
    # Then none folds (the next run of the part is due), and the next, on time, counts the start once
    assert _run_every_part(services, {"scheduled_at": late}) == 0
    almost_over = (NOW - SCHEDULE_PERIOD + RETURN_MARGIN + timedelta(seconds=0.2)).isoformat()
    assert _run_every_part(services, {"scheduled_at": almost_over}) == 1
    assert services.country_starts.counts(1).counts == [("FI", 1)]
