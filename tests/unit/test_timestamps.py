"""How the service writes an instant: RFC 3339 in UTC with ``Z``, milliseconds when there are any."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from player_sessions.models import format_timestamp

OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def _as_isoformat_writes_it(moment: datetime) -> str:
    """The same text by another road: the instant in UTC, written by ``isoformat``."""
    in_utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    timespec = "milliseconds" if in_utc.microsecond else "seconds"
    return in_utc.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.none() | st.just(UTC) | OFFSETS,
    )
)
def test_any_instant_is_written_in_utc_as_isoformat_writes_it(moment: datetime) -> None:
    assert format_timestamp(moment) == _as_isoformat_writes_it(moment)


def test_milliseconds_only_when_there_are_any() -> None:
    assert format_timestamp(datetime(2026, 12, 7, 9, 5, 3, tzinfo=UTC)) == "2026-12-07T09:05:03Z"
    assert format_timestamp(datetime(2026, 12, 7, 9, 5, 3, 250_000, tzinfo=UTC)) == "2026-12-07T09:05:03.250Z"
    # Under a millisecond: the milliseconds are written, as zeros (the instant is not a whole second).
    assert format_timestamp(datetime(2026, 12, 7, 9, 5, 3, 999, tzinfo=UTC)) == "2026-12-07T09:05:03.000Z"


def test_an_offset_is_turned_into_utc_and_a_naive_instant_taken_as_utc() -> None:
    east = datetime(2026, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=3)))
    assert format_timestamp(east) == "2025-12-31T23:30:00Z"
    assert format_timestamp(datetime(2026, 1, 1, 2, 30)) == "2026-01-01T02:30:00Z"
    assert format_timestamp(datetime(5, 3, 4, 1, 2, 3, tzinfo=UTC)) == "0005-03-04T01:02:03Z"
