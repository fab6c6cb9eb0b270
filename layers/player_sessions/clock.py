"""Time is a parameter: domain code takes a Clock, so tests fix "now" instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that reads what it is set to (tests, replays)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.moment += timedelta(**delta)


if TYPE_CHECKING:
    # mypy holds both clocks to the Protocol (nothing runs).
    _system: type[Clock] = SystemClock
    _fixed: type[Clock] = FixedClock
