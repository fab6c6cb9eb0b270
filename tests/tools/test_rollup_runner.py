"""A local builder's scheduled runs, as EventBridge and Lambda run them deployed: a run that fails is one failed
invocation, and its part's next run comes at its time (the part's builder does not stop for good)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from player_sessions.clock import SystemClock
from player_sessions.domain.country_starts import schedule
from player_sessions.domain.country_starts.builder import FoldReport
from player_sessions_local import rollup_runner
from player_sessions_local.rollup_runner import RollupRunner
from tests.fakes import in_memory_services

PERIOD = timedelta(seconds=0.6)


class _FailsOnce:
    """A part's builders whose first fold fails with an error that is not the database's (a bug)."""

    def __init__(self) -> None:
        self.folds = 0

    def fold(self, part: int = 0, max_slots: int = 120, max_busy_slots: int | None = None) -> FoldReport:
        self.folds += 1
        if self.folds == 1:
            raise RuntimeError("a bug in the builder")
        return FoldReport()

    def compact_what_is_left(self, *levels: object) -> int:
        return 0


def test_a_run_that_fails_leaves_its_part_to_the_next_run(monkeypatch, caplog):
    # Given a schedule of 0.6 s instead of a minute, and builders whose first fold raises
    monkeypatch.setattr(schedule, "SCHEDULE_PERIOD", PERIOD)
    monkeypatch.setattr(schedule, "RETURN_MARGIN", timedelta(seconds=0.1))
    monkeypatch.setattr(rollup_runner, "SCHEDULE_PERIOD", PERIOD)
    builders = _FailsOnce()
    services = replace(in_memory_services(datetime.now(UTC)), clock=SystemClock())
    monkeypatch.setattr(services, "rollup_builder", lambda: builders)
    caplog.set_level(logging.ERROR, logger=rollup_runner.__name__)
    # When the part's runs are started
    runner = RollupRunner(services).start()
    deadline = time.monotonic() + 10
    while builders.folds < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    # Then the failed run is logged and counted, and the next run folds at its time
    assert builders.folds >= 2
    assert runner.failures == 1
    assert "a bug in the builder" in caplog.text
