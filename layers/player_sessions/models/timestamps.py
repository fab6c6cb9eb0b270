"""Instants as the service writes them: epoch milliseconds (cache entries, cursors) and RFC 3339 with ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, milliseconds when there are any."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat, not strftime: a page formats a thousand of these.
    text = moment.replace(tzinfo=None).isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text + "Z"
