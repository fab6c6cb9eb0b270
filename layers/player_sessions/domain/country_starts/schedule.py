"""When a scheduled builder run folds: from its scheduled moment to just before its part's next run is due.

EventBridge starts one run per part every SCHEDULE_PERIOD, and reserved concurrency allows one run per part at
a time, so a run must have returned before the next one arrives (else that one is throttled). A run that
folded for a fixed time from its own start left its part unfolded for the rest of every period (5 s a minute
with 55 s of folding): the lag, and every reader's tail, grew by that much once a minute. A run that stops a
HANDOFF_MARGIN before the next one is due leaves only the margin, plus EventBridge's delivery delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

SCHEDULE_PERIOD = timedelta(minutes=1)
"""EventBridge's shortest rate: each part's builder is started once a period."""
HANDOFF_MARGIN = timedelta(seconds=1.5)
"""A run stops folding this long before its part's next run is due, and compacts what it leaves in that time."""
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
    """When a run scheduled at ``scheduled`` (None: now), started ``now``, stops folding: HANDOFF_MARGIN before
    the next run of its part is due. A run delivered late folds for less; one not yet due by this clock (the two
    clocks differ by a little) counts from now."""
    start = now if scheduled is None else min(scheduled, now)
    return start + SCHEDULE_PERIOD - HANDOFF_MARGIN
