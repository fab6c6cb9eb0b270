"""When a scheduled builder run folds: from its scheduled moment to just before its part's next run is due.

EventBridge starts one run per part every SCHEDULE_PERIOD, and reserved concurrency allows one run per part at
a time, so a run must have returned before the next one arrives (else that one is throttled). A run that
folded for a fixed time from its own start left its part unfolded for the rest of every period (5 s a minute
with 55 s of folding): the lag, and every reader's tail, grew by that much once a minute. A run folds until a
RETURN_MARGIN before the next one is due, and compacts what it leaves while it waits for a slot to settle before
its last folds, which take one slot with arrivals each (run_until_handoff), so that at the handoff its part waits
only for the next run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

SCHEDULE_PERIOD = timedelta(minutes=1)
"""EventBridge's shortest rate: each part's builder is started once a period."""
RETURN_MARGIN = timedelta(seconds=0.5)
"""A run's last fold ends this long before its part's next run is due: time to return (its metrics and log
lines written), so that the next run is not throttled."""
RECENT_FOLDS = 10
"""A run expects its next fold to take as long as the longest of its last this many (about as many seconds when
caught up): not the longest of the run, which is most often its first, catching up on what the handoff left."""
SCHEDULED_AT = "scheduled_at"
"""The key of the run's event that holds the time EventBridge scheduled it at (the schedule event's ``time``)."""


def scheduled_at(event: Mapping[str, Any]) -> datetime | None:
    """The moment the run was scheduled for, as its event gives it (ISO 8601, UTC); None when the event has
    none or one that is not a time (a run started by hand: it is then taken to start now)."""
    value = event.get(SCHEDULED_AT)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fold_until(scheduled: datetime | None, now: datetime) -> datetime:
    """When a run scheduled at ``scheduled`` (None: now), started ``now``, stops folding: RETURN_MARGIN before
    the next run of its part is due. A run delivered late folds for less; one not yet due by this clock (the two
    clocks differ by a little) counts from now."""
    start = now if scheduled is None else min(scheduled, now)
    return start + SCHEDULE_PERIOD - RETURN_MARGIN


def run_until_handoff(
    seconds_left: Callable[[], float],
    fold: Callable[[bool], float],
    compact: Callable[[], object],
    wait: Callable[[float], bool],
) -> None:
    """A scheduled run's folds: ``fold`` (it returns the seconds to wait before the next) while one as long as
    expected ends within ``seconds_left``; ``compact`` (what the run's folds leave uncompacted) once, as soon as
    a compaction as long as the longest of the run's RECENT_FOLDS last folds would no longer fit after the next
    fold, so in the pause before the run's last folds rather than after them; ``wait`` returns True when the
    run is asked to stop.

    After the compaction, each fold takes at most one slot with arrivals (``fold(True)``) and is expected to
    take as long as the longest such fold of the run (before the first, the longest of its last folds): a run
    that is behind folds several slots at once, and would otherwise stop as early before its handoff as such a
    fold lasts.

    The folds after the compaction leave a few deltas tracked, compacted by the part's next run when it runs in
    the same environment; else they stay, one more row each in the buckets they changed, until the next
    compaction of those buckets (docs/decisions.md)."""
    recent: deque[float] = deque(maxlen=RECENT_FOLDS)
    one_slot: deque[float] = deque(maxlen=RECENT_FOLDS)
    compacted = False

    def expected() -> float:
        return max(one_slot) if one_slot else max(recent, default=0.0)

    while (left := seconds_left()) > expected():
        pause = fold(compacted)
        folded_left = seconds_left()
        (one_slot if compacted else recent).append(left - folded_left)
        next_fold_left = folded_left - pause  # the seconds left when the next fold would start
        if not compacted and next_fold_left < 2 * max(recent):
            compact()
            compacted = True
        if next_fold_left <= expected() or wait(max(0.0, seconds_left() - next_fold_left)):
            break
    if not compacted:
        compact()
