"""Retention: nothing older than the configured days is stored, kept or returned.

Every stored row expires when its event leaves the retention (a per-write TTL of ``ts + retention - now``);
reads never reach further back than ``now - retention``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta


def ttl_seconds(ts: datetime, now: datetime, retention: timedelta) -> int:
    """Seconds until an event at ``ts`` leaves the retention: ``ts + retention - now``, rounded down (zero or
    less: it already has, and is not stored)."""
    return math.floor((ts + retention - now).total_seconds())


def ttl_naming(instants: Sequence[datetime], now: datetime, retention: timedelta, needed_seconds: int) -> int:
    """The TTL of a row that names the events at ``instants`` (an aggregate's record of them) and is needed
    ``needed_seconds``: no longer than the newest of them is retained, plus a second, so that it outlives their
    own rows, whose TTLs were rounded down when they were stored."""
    return min(needed_seconds, 1 + max((ttl_seconds(ts, now, retention) for ts in instants), default=0))


def oldest_retained(now: datetime, retention: timedelta) -> datetime:
    """The earliest instant a read may return."""
    return now - retention
