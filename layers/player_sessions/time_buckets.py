"""Hour, day and month buckets of session starts, and when a start counts as late for its rollups.

See docs/decisions.md ("Exact counts with bounded reads") for the argument these rules serve.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

SETTLE_DELAY = timedelta(minutes=10)
"""A bucket that ended longer ago than this may be served from rollups."""
LATE_MARGIN = timedelta(minutes=5)
"""Allowed clock difference between writers and readers (plus the time a write is in flight)."""


class Level(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, order=True)
class Bucket:
    """A rollup bucket: its level, the partition it lives in (``period``) and its own start (``start``)."""

    level: Level
    period: datetime
    start: datetime


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def month_of(moment: datetime) -> datetime:
    return day_of(moment).replace(day=1)


def year_of(moment: datetime) -> datetime:
    return month_of(moment).replace(month=1)


def next_month(month_start: datetime) -> datetime:
    return month_start.replace(year=month_start.year + month_start.month // 12, month=month_start.month % 12 + 1)


def bucket_end(bucket: Bucket) -> datetime:
    if bucket.level is Level.HOUR:
        return bucket.start + timedelta(hours=1)
    if bucket.level is Level.DAY:
        return bucket.start + timedelta(days=1)
    return next_month(bucket.start)


def hour_bucket(moment: datetime) -> Bucket:
    return Bucket(Level.HOUR, day_of(moment), hour_of(moment))


def day_bucket(moment: datetime) -> Bucket:
    return Bucket(Level.DAY, month_of(moment), day_of(moment))


def month_bucket(moment: datetime) -> Bucket:
    return Bucket(Level.MONTH, year_of(moment), month_of(moment))


def buckets_containing(moment: datetime) -> tuple[Bucket, Bucket, Bucket]:
    return hour_bucket(moment), day_bucket(moment), month_bucket(moment)


def is_late_start(ts: datetime, now: datetime) -> bool:
    """A start is late when its hour ended long enough ago that a reader may already have rolled it up."""
    return hour_of(ts) + timedelta(hours=1) <= now - (SETTLE_DELAY - LATE_MARGIN)


def is_settled(bucket: Bucket, now: datetime) -> bool:
    return bucket_end(bucket) <= now - SETTLE_DELAY


def start_shard(session_id: UUID, shards: int) -> int:
    """The same session always lands in the same shard, so a re-sent start rewrites the same row."""
    return zlib.crc32(session_id.bytes) % shards
