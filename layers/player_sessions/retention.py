"""Retention: nothing older than the configured days is stored, kept or returned.

Every stored row expires when its event leaves the retention (a per-write TTL of ``ts + retention - now``);
reads never reach further back than ``now - retention``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta


def ttl_seconds(ts: datetime, now: datetime, retention: timedelta) -> int:
    """Seconds until an event at ``ts`` leaves the retention: ``ts + retention - now``, rounded down (zero or
    less: it already has, and is not stored)."""
    return math.floor((ts + retention - now).total_seconds())


def oldest_retained(now: datetime, retention: timedelta) -> datetime:
    """The earliest instant a read may return."""
    return now - retention
