"""The rollup builder, run locally as the scheduled function runs deployed: in a background thread of the
gateway (`make serve`, the end-to-end tests), or to the end of the arrivals after a bulk load."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from player_sessions.domain.rollup_builder import CompactionTracker, FoldReport, fold_ready_slots
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.observability import metrics
from player_sessions.services import Services

PAUSE_SECONDS = 0.25
"""Between two runs, as in functions/rollup_builder (the tail readers count stays near SLOT_SETTLE + this)."""
_LOGGER = logging.getLogger(__name__)


def add_reports(total: FoldReport, report: FoldReport) -> None:
    total.slots_folded += report.slots_folded
    total.starts_counted += report.starts_counted
    total.deltas_written += report.deltas_written
    total.bases_written += report.bases_written
    total.watermark, total.behind_seconds = report.watermark, report.behind_seconds


def fold_until_caught_up(
    services: Services, tracker: CompactionTracker | None = None, timeout_seconds: float = 3600.0
) -> FoldReport:
    """Folds until the watermark is within a second of the newest settled slot (after a bulk load)."""
    tracker = tracker or CompactionTracker()
    total = FoldReport()
    deadline = time.monotonic() + timeout_seconds
    while True:
        report = fold_ready_slots(
            store=services.starts,
            clock=services.clock,
            settings=services.settings,
            tracker=tracker,
            cache=services.cache,
            max_slots=60,
        )
        metrics.clear_metrics()
        add_reports(total, report)
        if report.behind_seconds <= 1 or time.monotonic() > deadline:
            return total


@dataclass
class RollupRunner:
    """Folds settled slots every PAUSE_SECONDS in a daemon thread until stopped."""

    services: Services
    pause_seconds: float = PAUSE_SECONDS
    total: FoldReport = field(default_factory=FoldReport)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tracker: CompactionTracker = field(default_factory=CompactionTracker)

    def start(self) -> RollupRunner:
        self._thread = threading.Thread(target=self._run, name="rollup-builder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = fold_ready_slots(
                    store=self.services.starts,
                    clock=self.services.clock,
                    settings=self.services.settings,
                    tracker=self._tracker,
                    cache=self.services.cache,
                )
                add_reports(self.total, report)
            except DatabaseUnavailableError as error:
                # Cassandra is down or slow: the next run starts from the watermark again.
                self.failures += 1
                _LOGGER.warning("rollup builder: %s", error)
            finally:
                metrics.clear_metrics()
            if self.total.behind_seconds < 1:
                self._stop.wait(self.pause_seconds)
