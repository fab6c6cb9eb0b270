"""The rollup builder, run locally as the scheduled function runs deployed: a background thread per part (in
the builders' own process beside the gateway or the benchmark: player_sessions_local.builder_process), or to
the end of the arrivals after a bulk load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from player_sessions.bootstrap import Services
from player_sessions.domain.country_starts.builder import FamilyBuilders, FoldReport, pause_after
from player_sessions.domain.country_starts.schedule import SCHEDULE_PERIOD, fold_until, run_until_handoff
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.observability import metrics
from player_sessions.read_counts import ReadTally, metered
from player_sessions.time_buckets import COARSE_LEVELS
from player_sessions_local.work.invocation import SCHEDULED_ROUTE, work_line
from player_sessions_local.work.meter import Meter, WorkTally, measuring, meters_of

MAX_CATCH_UP_FAILURES = 20
RETRY_PAUSE_SECONDS = 2.0
"""After a failed catch-up run: time for a node busy compacting to answer again."""
WORK_LABEL = "rollup_builder#local"
_LOGGER = logging.getLogger(__name__)


def fold_until_caught_up(services: Services, timeout_seconds: float = 3600.0) -> FoldReport:
    """Every part's builder at once, each in a thread of its own, until each is within a second of the newest
    settled slot (after a bulk load); then each compacts what it left uncompacted, every part's folds done.
    The report sums them."""
    total = FoldReport()
    parts = services.settings.partition.all_parts
    builders = [services.rollup_builder() for _ in parts]
    with ThreadPoolExecutor(services.settings.rollup_parts) as pool:
        reports = pool.map(
            lambda part: fold_part_until_caught_up(builders[part], part, timeout_seconds=timeout_seconds),
            parts,
        )
        for report in reports:
            total.add(report)
        # A load touches a second, a minute and more of every start's: only the buckets most reads span.
        try:
            total.bases_written += sum(
                pool.map(lambda builder: builder.compact_what_is_left(COARSE_LEVELS), builders)
            )
        except DatabaseUnavailableError as error:
            _LOGGER.warning("rollup builder: compacting what the catch-up left: %s", error)
    return total


def fold_part_until_caught_up(
    builder: FamilyBuilders, part: int, timeout_seconds: float = 3600.0
) -> FoldReport:
    """Folds the part until its watermark is within a second of the newest settled slot.

    A run that Cassandra times out (a node busy compacting the load) is run again from the watermark, as the
    scheduled builder's next run would: folding a slot again is safe (domain.country_starts.builder)."""
    total = FoldReport()
    deadline = time.monotonic() + timeout_seconds
    failures = 0
    while True:
        try:
            report = builder.fold(part, max_slots=60)
        except DatabaseUnavailableError as error:
            failures += 1
            if failures > MAX_CATCH_UP_FAILURES or time.monotonic() > deadline:
                raise
            _LOGGER.warning("rollup builder: %s; folding again from the watermark", error)
            time.sleep(RETRY_PAUSE_SECONDS)
            continue
        finally:
            metrics.clear_metrics()
        total.add(report)
        if report.behind_seconds <= 1 or time.monotonic() > deadline:
            return total


@dataclass
class RollupRunner:
    """A part's scheduled runs, as EventBridge starts them deployed (one a period, each folding its settled
    slots as they settle until just before the next is due, as functions/rollup_builder does), in a daemon
    thread until stopped, on services of its own (as each part's scheduled function has its own environment)."""

    services: Services
    part: int = 0
    total: FoldReport = field(default_factory=FoldReport)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    work_log: Path | None = None
    """Where each run's measured work goes as a "request work" line (the cost model reads it); without
    one, to this module's logger (the gateway's log)."""
    _minute_reads: ReadTally = field(default_factory=ReadTally)
    _minute_work: WorkTally = field(default_factory=WorkTally)
    _minutes: int = 0
    lags: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic time, seconds behind the newest settled slot) after each run: the lag a reader's tail pays."""

    def start(self) -> RollupRunner:
        self._thread = threading.Thread(target=self._run, name=f"rollup-builder-{self.part}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _report_work(self) -> None:
        self._minutes += 1
        line = work_line(
            f"local-builder-{self.part}-{self._minutes}",
            SCHEDULED_ROUTE,
            self._minute_work,
            self._minute_reads,
            starts_counted=self.total.starts_counted,
        )
        if self.work_log is None:
            _LOGGER.info("%s %s", WORK_LABEL, line)
        else:
            with self.work_log.open("a") as log:
                log.write(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S,%f} INFO {WORK_LABEL} {line}\n")
        self._minute_reads, self._minute_work = ReadTally(), WorkTally()

    def _meters(self) -> list[Meter]:
        """The builder's own connections' meters (installed where work is reported)."""
        cassandra, redis = self.services.cassandra, self.services.redis
        try:
            session = cassandra.session() if cassandra is not None else None
        except DatabaseUnavailableError:
            return []
        return meters_of(session, redis.client() if redis is not None else None)

    def _run(self) -> None:
        """Scheduled runs as EventBridge starts them deployed, one a period from the first: each folds until
        its handoff, compacting what it leaves before its last folds (domain.country_starts.schedule), reports
        its work and returns; the part then waits, unfolded, for its next run, as it does deployed."""
        builder = self.services.rollup_builder()
        clock = self.services.clock
        scheduled = clock.now()
        while not self._stop.is_set():
            try:
                run_until_handoff(
                    partial(self._seconds_until, fold_until(scheduled, clock.now())),
                    partial(self._fold, builder),
                    partial(self._compact_what_is_left, builder),
                    self._stop.wait,
                )
            except Exception:
                # Deployed, a run that raises is one failed invocation: the part's next run still comes at its
                # time. Here too, rather than the part's builder stopping for good.
                self.failures += 1
                _LOGGER.exception("rollup builder: the run failed; the part's next run comes at its time")
            if not self._stop.is_set():
                self._report_work()
            # The next run as EventBridge starts it: at the next tick, or at once when this run overran it (Lambda
            # retries a throttled run, after 1 s: not emulated); a tick a whole period past is skipped (its event
            # is past its maximum age).
            scheduled += SCHEDULE_PERIOD
            while clock.now() - scheduled >= SCHEDULE_PERIOD:
                scheduled += SCHEDULE_PERIOD
            self._stop.wait(max(0.0, (scheduled - clock.now()).total_seconds()))

    def _seconds_until(self, moment: datetime) -> float:
        return (moment - self.services.clock.now()).total_seconds()

    def _fold(self, builder: FamilyBuilders, one_slot: bool) -> float:
        """One fold of the part (of one slot with arrivals at the most when ``one_slot``); returns the seconds
        to wait before the next."""
        try:
            with metered(into=self._minute_reads), measuring(self._meters(), into=self._minute_work):
                report = builder.fold(self.part, max_busy_slots=1 if one_slot else None)
            self.total.add(report)
            self.lags.append((time.monotonic(), report.behind_seconds))
        except DatabaseUnavailableError as error:
            # Cassandra is down or slow: the next fold starts from the watermark again.
            self.failures += 1
            _LOGGER.warning("rollup builder: %s", error)
        finally:
            metrics.clear_metrics()
        return pause_after(self.total, self.services.clock.now())

    def _compact_what_is_left(self, builder: FamilyBuilders) -> None:
        try:
            with metered(into=self._minute_reads), measuring(self._meters(), into=self._minute_work):
                self.total.bases_written += builder.compact_what_is_left()
        except DatabaseUnavailableError as error:
            _LOGGER.warning("rollup builder: compacting what it leaves: %s", error)
        finally:
            metrics.clear_metrics()


def start_runners(
    services_of_part: Callable[[int], Services], parts: int, **options: Any
) -> list[RollupRunner]:
    """A builder per part, each on the services ``services_of_part`` builds for it, started."""
    return [RollupRunner(services_of_part(part), part, **options).start() for part in range(parts)]
