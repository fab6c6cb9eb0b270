"""The two country questions, as the API asks them: counts for every country, and one country's starts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from player_sessions.clock import Clock
from player_sessions.domain.country_starts.counting import count_starts_by_country
from player_sessions.domain.country_starts.cursor import CountryCursor, decode_cursor, encode_cursor
from player_sessions.domain.country_starts.listing import Page, Position, list_country_starts
from player_sessions.domain.country_starts.records import contributions_of
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import Window, window_for
from player_sessions.errors import BadRequestError
from player_sessions.models import StartRow, from_epoch_ms, to_epoch_ms
from player_sessions.repositories.cache_protocol import NoCache, ReadCache, country_scope, decoded_or_miss
from player_sessions.repositories.protocols import StartsStore
from player_sessions.retention import oldest_retained
from player_sessions.settings import Settings

PAGE_CACHE_TTL_SECONDS = 60


@dataclass(frozen=True)
class CountryCounts:
    window: Window
    counts: list[tuple[str, int]]
    """Sorted by starts descending, then country ascending; countries without starts left out."""
    unread_from: datetime | None = None
    """None: exact. Else partial: starts that arrived from then on may be missing (the builders are far
    behind; domain.country_starts.window.TAIL_ARRIVALS_READ_AT_MOST)."""
    folded_through: datetime | None = None
    """How settled the counts are: every start stored before then is folded (counting.StartCounts)."""
    late_starts: int = 0
    """The window's starts that arrived more than the clock-skew allowance after their ts."""

    @property
    def total(self) -> int:
        return sum(starts for _, starts in self.counts)


@dataclass(frozen=True)
class CountryPage:
    window: Window
    starts: list[StartRow]
    next_cursor: str | None
    unread_from: datetime | None = None
    """As CountryCounts.unread_from: late starts that arrived from then on may be missing."""


@dataclass(frozen=True)
class CountryStarts:
    """The two country questions over one store, asked at the clock's now (the composition root builds it once
    per environment: ``Services.country_starts``)."""

    store: StartsStore
    clock: Clock
    settings: Settings
    cache: ReadCache = field(default_factory=NoCache)
    settled_arrivals: SettledArrivals | None = None
    """The arrivals of settled slots that earlier requests read (None: each request reads its whole tail)."""

    def counts(self, hours: int) -> CountryCounts:
        """Exact starts per country over the last ``hours`` (the cached part, whole hours and more, see
        domain.country_starts.counting)."""
        now = self.clock.now()
        window = window_for(hours, now, self.settings.retention)
        counted = count_starts_by_country(
            window,
            store=self.store,
            now=now,
            partition=self.settings.partition,
            contributions=contributions_of(self.store.family, self.settings),
            cache=self.cache,
            tail_at_most=self.settings.tail_arrivals_read_at_most,
            settled=self.settled_arrivals,
        )
        ordered = sorted(
            ((country, n) for country, n in counted.counts.items() if n > 0),
            key=lambda item: (-item[1], item[0]),
        )
        return CountryCounts(window, ordered, counted.unread_from, counted.folded_through, counted.late)

    def page(self, country: str, hours: int, *, limit: int, cursor: str | None = None) -> CountryPage:
        """One page of the country's starts in the window, newest first; the cursor pins the first page's window.

        Pages are cached under the country's ``starts:<country>`` generation, which every start of that country
        bumps once stored. A first page cached a moment ago answers a later request whose window ends later if
        no start of the country is stamped in between (read, at most one row) and none fell out at the old end.
        """
        country = country.upper()
        signing_keys = self.settings.cursor_keys()
        after: Position | None = None
        now = self.clock.now()
        if cursor:
            decoded = decode_cursor(cursor, signing_keys)
            if (decoded.country, decoded.hours) != (country, hours):
                raise BadRequestError(
                    "cursor belongs to another query",
                    [
                        {
                            "parameter": "cursor",
                            "in": "query",
                            "reason": f"issued for country={decoded.country}&hours={decoded.hours}",
                        }
                    ],
                )
            pinned = Window(decoded.window_start, decoded.window_end)
            after = Position(decoded.last_ts, decoded.last_session_id)
            key = f"page:{country}:{limit}:{to_epoch_ms(pinned.start)}:{to_epoch_ms(pinned.end)}:{cursor}"
            # The first page's window, less what has left the retention since (a cached page is cut likewise).
            window = Window(max(pinned.start, oldest_retained(now, self.settings.retention)), pinned.end)
            if window.start > window.end:
                return CountryPage(Window(pinned.end, pinned.end), [], None, None)
        else:
            window = window_for(hours, now, self.settings.retention)
            key = f"first:{country}:{hours}:{limit}"
        token, raw = self.cache.lookup([country_scope(country)], key)
        cached = decoded_or_miss(raw, _page_from_json)
        page = _reusable(cached, window, country, self.store) if cached is not None else None
        if page is None:
            computed_window = window
            page = list_country_starts(
                country,
                window,
                limit=limit,
                after=after,
                store=self.store,
                now=now,
                partition=self.settings.partition,
                tail_at_most=self.settings.tail_arrivals_read_at_most,
                settled=self.settled_arrivals,
            )
            # A partial page is not kept; a page is encoded only where the cache can keep it.
            if page.unread_from is None and token is not None:
                self.cache.store(token, key, _page_to_json(page, computed_window), PAGE_CACHE_TTL_SECONDS)
        next_cursor = None
        if page.next_position is not None:
            next_cursor = encode_cursor(
                CountryCursor(
                    country,
                    hours,
                    window.start,
                    window.end,
                    page.next_position.ts,
                    page.next_position.session_id,
                ),
                signing_keys[0],
            )
        return CountryPage(window, page.starts, next_cursor, page.unread_from)


def _reusable(cached: tuple[Window, Page], window: Window, country: str, store: StartsStore) -> Page | None:
    """The cached page, as it is for ``window``; None when it may differ. Starts stored after it was computed
    changed the generation it was found under, so only its window's two ends can differ: starts stamped after
    its end (a client's clock ahead of ours) and starts that fell out at its start."""
    computed_for, page = cached
    if window.end < computed_for.end or window.start < computed_for.start:
        return None
    if window.end > computed_for.end and store.has_country_start_between(
        country, computed_for.end, window.end
    ):
        return None
    kept = [row for row in page.starts if row.ts >= window.start]
    if len(kept) < len(page.starts) and page.next_position is not None:
        return None
    return Page(kept, page.next_position if kept else None)


def _page_to_json(page: Page, window: Window) -> bytes:
    position = page.next_position
    return json.dumps(
        {
            "window": [to_epoch_ms(window.start), to_epoch_ms(window.end)],
            "rows": [[to_epoch_ms(r.ts), str(r.session_id), r.player_id, r.country] for r in page.starts],
            "next": [to_epoch_ms(position.ts), str(position.session_id)] if position else None,
        }
    ).encode()


def _page_from_json(data: bytes) -> tuple[Window, Page]:
    decoded = json.loads(data)
    rows = [
        StartRow(from_epoch_ms(ts), UUID(sid), player, country)
        for ts, sid, player, country in decoded["rows"]
    ]
    position = (
        Position(from_epoch_ms(decoded["next"][0]), UUID(decoded["next"][1])) if decoded["next"] else None
    )
    window = Window(from_epoch_ms(decoded["window"][0]), from_epoch_ms(decoded["window"][1]))
    return window, Page(rows, position)
