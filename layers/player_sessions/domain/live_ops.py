"""What a live-ops team watches: the sessions open now per country, and how long the completed ones lasted.

Both are exact counts kept like the starts (domain.country_starts.counting), from two more rollup families
(schema.COMPLETIONS, schema.LENGTHS) whose records ingest writes once both halves of a session are stored:
- open now = the starts of the last ``Settings.open_session_hours`` minus the completions among them (a
  completion record sits at its session's start ts). The completions are read first: a completion is written
  only after its start is acknowledged, so no completion is ever seen without its start.
- lengths: per country, count and summed milliseconds (exact) and a log-scale histogram whose quantiles are
  within ``records.RELATIVE_ERROR`` of the exact ones; durations outside ``[0, open_session_hours]`` apart.
Every answer says how settled it is (``Settled``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from player_sessions import histograms
from player_sessions.clock import Clock
from player_sessions.domain.country_starts.counting import StartCounts, count_starts_by_country
from player_sessions.domain.country_starts.records import (
    BINS,
    MILLISECONDS,
    OUTSIDE,
    bin_value,
    contributions_of,
)
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import Window, whole_second_window
from player_sessions.repositories.cache_protocol import NoCache, ReadCache
from player_sessions.repositories.protocols import StartsStore
from player_sessions.settings import Settings


@dataclass(frozen=True)
class Settled:
    """How settled an answer is."""

    folded_through: datetime | None
    """Every record stored before this instant is in the rollups (the oldest of the families read); None when
    none was ever stored."""
    late: int
    """The window's records (starts, or completed sessions) that arrived more than the clock-skew allowance
    after their own ts: what may still have been missing from an earlier answer."""
    unread_from: datetime | None = None
    """None: exact. Else the builders are far behind, and records that arrived from then on may be missing."""

    @classmethod
    def of(cls, *counts: StartCounts, late: int) -> Settled:
        folded = [c.folded_through for c in counts if c.folded_through is not None]
        unread = [c.unread_from for c in counts if c.unread_from is not None]
        return cls(min(folded, default=None), late, min(unread, default=None))


@dataclass(frozen=True)
class OnlineNow:
    window: Window
    counts: list[tuple[str, int]]
    """Sessions open per country, most first, then by country; countries with none left out."""
    settled: Settled

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class Durations:
    """Completed sessions' durations in a window: exact count, sum and those outside the range, and the
    histogram the quantiles come from (one integer: player_sessions.histograms)."""

    sessions: int = 0
    milliseconds: int = 0
    outside: int = 0
    histogram: int = 0

    @property
    def mean_ms(self) -> float | None:
        return self.milliseconds / self.sessions if self.sessions else None

    def quantile_ms(self, q: float) -> float | None:
        """The nearest-rank quantile (the ``ceil(q * n)``-th shortest), within the histogram's relative error."""
        if not self.sessions:
            return None
        index = histograms.nearest_rank_bin(self._cumulative, max(1, math.ceil(q * self.sessions)))
        if index is None:
            raise ValueError("the histogram holds fewer durations than the count")
        return bin_value(index)

    @cached_property
    def _cumulative(self) -> list[int]:
        return histograms.cumulative_counts(self.histogram)

    def plus(self, other: Durations) -> Durations:
        return Durations(
            self.sessions + other.sessions,
            self.milliseconds + other.milliseconds,
            self.outside + other.outside,
            self.histogram + other.histogram,
        )


@dataclass(frozen=True)
class SessionLengths:
    window: Window
    countries: list[tuple[str, Durations]]
    """Most sessions first, then by country; a country with only durations outside the range comes last."""
    total: Durations
    settled: Settled


def durations_by_country(counts: Counter[str]) -> dict[str, Durations]:
    """The lengths family's counts (domain.country_starts.records) as each country's durations."""
    sessions: Counter[str] = Counter()
    milliseconds: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    bins: Counter[str] = Counter()
    for key, n in counts.items():
        country, _, figure = key.partition("/")
        if not figure:
            sessions[country] += n
        elif figure == MILLISECONDS:
            milliseconds[country] += n
        elif figure == OUTSIDE:
            outside[country] += n
        elif figure == BINS:
            bins[country] += n
        elif figure.isdigit():
            # A row written before a country's histogram was one integer holds one key per bin.
            bins[country] += histograms.of_bin(int(figure), n)
        # Any other figure is a later version's, which this one does not show.
    return {
        country: Durations(sessions[country], milliseconds[country], outside[country], bins[country])
        for country in sorted(set(sessions) | set(outside))
    }


@dataclass(frozen=True)
class LiveOps:
    """The live-ops figures over three rollup families' stores, asked at the clock's now (built once per
    environment: ``Services.live_ops``)."""

    starts: StartsStore
    completions: StartsStore
    lengths: StartsStore
    clock: Clock
    settings: Settings
    cache: ReadCache = field(default_factory=NoCache)
    settled_arrivals: SettledArrivals | None = None
    """The arrivals of settled slots that earlier requests read, per family (None: each reads its whole tail)."""

    def _count(self, store: StartsStore, window: Window, now: datetime) -> StartCounts:
        return count_starts_by_country(
            window,
            store=store,
            now=now,
            partition=self.settings.partition,
            contributions=contributions_of(store.family, self.settings),
            cache=self.cache,
            tail_at_most=self.settings.tail_arrivals_read_at_most,
            settled=self.settled_arrivals,
        )

    def online(self) -> OnlineNow:
        """Sessions started in the last ``open_session_hours`` (from its first whole second) and not ended."""
        now = self.clock.now()
        window = whole_second_window(self.settings.open_session_hours, now, self.settings.retention)
        completed = self._count(self.completions, window, now)
        started = self._count(self.starts, window, now)
        open_now = started.counts.copy()
        open_now.subtract(completed.counts)
        ordered = sorted(
            ((country, n) for country, n in open_now.items() if n > 0), key=lambda item: (-item[1], item[0])
        )
        return OnlineNow(window, ordered, Settled.of(completed, started, late=started.late))

    def session_lengths(self, hours: int) -> SessionLengths:
        """The durations of the sessions that ended in the last ``hours`` (from its first whole second)."""
        now = self.clock.now()
        window = whole_second_window(hours, now, self.settings.retention)
        counted = self._count(self.lengths, window, now)
        by_country = durations_by_country(counted.counts)
        total = Durations()
        for durations in by_country.values():
            total = total.plus(durations)
        ordered = sorted(by_country.items(), key=lambda item: (-item[1].sessions, -item[1].outside, item[0]))
        return SessionLengths(window, ordered, total, Settled.of(counted, late=counted.late))
