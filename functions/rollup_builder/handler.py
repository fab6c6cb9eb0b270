"""The rollup builder: an EventBridge-scheduled function that folds arrival slots into the rollups.

Scheduled every minute once per part of the arrival log (the event says which, and when it was scheduled:
``{"part": p, "scheduled_at": time}``), one invocation keeps folding its part until just before the part's next
one is due (a slot settles 1.5 s after it ends, and EventBridge cannot schedule more often than once a minute),
compacting what its folds leave before its last ones (of a slot with arrivals each), then returns
(domain.country_starts.schedule). Reserved concurrency equal to the parts keeps one builder per part; two of one
part at once would still count every start once.
"""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from player_sessions.bootstrap import get_services
from player_sessions.domain.country_starts.builder import CompactionTracker, FoldReport, pause_after
from player_sessions.domain.country_starts.schedule import fold_until, run_until_handoff, scheduled_at
from player_sessions.observability import MetricUnit, logger, metrics, tracer

STOP_BEFORE_TIMEOUT_MS = 5_000

_trackers: dict[str, CompactionTracker] = {}
"""Per rollup family, deltas per bucket since its last base, kept across the invocations of this environment
(of one part)."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    part = int(event.get("part", 0))
    if not 0 <= part < services.settings.rollup_parts:
        raise ValueError(f"part {part} is not one of the {services.settings.rollup_parts} parts")
    logger.append_keys(part=part)
    now = services.clock.now()
    deadline = time.monotonic() + (fold_until(scheduled_at(event), now) - now).total_seconds()
    builder = services.rollup_builder(_trackers)
    total = FoldReport()

    def seconds_left() -> float:
        return min(
            deadline - time.monotonic(),
            (context.get_remaining_time_in_millis() - STOP_BEFORE_TIMEOUT_MS) / 1000,
        )

    def fold(one_slot: bool) -> float:
        report = builder.fold(part, max_busy_slots=1 if one_slot else None)
        total.add(report)
        return pause_after(report, services.clock.now())

    def compact() -> None:
        # The next invocation of this part may run in another environment, and this one may never run again:
        # what this one's trackers hold is compacted rather than left to every reader of those buckets.
        total.bases_written += builder.compact_what_is_left()

    def wait(seconds: float) -> bool:
        time.sleep(seconds)
        return False

    run_until_handoff(seconds_left, fold, compact, wait)
    metrics.add_metric(name="SlotsFolded", unit=MetricUnit.Count, value=total.slots_folded)
    metrics.add_metric(name="StartsFolded", unit=MetricUnit.Count, value=total.starts_counted)
    metrics.add_metric(name="RecordsFolded", unit=MetricUnit.Count, value=total.records_counted)
    metrics.add_metric(name="RollupLagSeconds", unit=MetricUnit.Seconds, value=total.behind_seconds)
    logger.info("rollups folded", extra=vars(total))
    return vars(total)
