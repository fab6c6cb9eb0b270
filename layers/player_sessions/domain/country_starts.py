"""The two country questions, as the API asks them: counts for every country, and one country's starts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from player_sessions.clock import Clock
from player_sessions.cursor import CountryCursor, decode_cursor, encode_cursor
from player_sessions.domain.country_listing import Page, Position, list_country_starts
from player_sessions.domain.start_counts import Window, count_starts_by_country, plan_window
from player_sessions.errors import BadRequestError
from player_sessions.models import StartRow, from_epoch_ms, to_epoch_ms
from player_sessions.repositories.cache_protocol import NoCache, ReadCache
from player_sessions.repositories.protocols import StartsStore
from player_sessions.settings import Settings

SETTLED_CACHE_TTL_SECONDS = 300
PAGE_CACHE_TTL_SECONDS = 60


@dataclass(frozen=True)
class CountryCounts:
    window: Window
    counts: list[tuple[str, int]]
    """Sorted by starts descending, then country ascending; countries without starts left out."""

    @property
    def total(self) -> int:
        return sum(starts for _, starts in self.counts)


@dataclass(frozen=True)
class CountryPage:
    window: Window
    starts: list[StartRow]
    next_cursor: str | None


def window_for(hours: int, now: datetime, retention: timedelta) -> Window:
    """``[now - hours, now]``, never reaching further back than the retention."""
    return Window(max(now - timedelta(hours=hours), now - retention), now)


def starts_by_country(hours: int, store: StartsStore, clock: Clock, settings: Settings,
                      cache: ReadCache | None = None) -> CountryCounts:
    """Exact starts per country over the last ``hours``.

    The settled part (rollups) is cached under the ``late`` scope: it changes only when a late start arrives.
    The open hours are always counted fresh, so an acknowledged start is never missing.
    """
    cache = cache or NoCache()
    now = clock.now()
    window = window_for(hours, now, settings.retention)
    plan = plan_window(window, now)
    settled: Counter[str] | None = None
    token = None
    key = ""
    if plan.buckets:
        key = f"settled:{to_epoch_ms(plan.buckets[0].start)}:{len(plan.buckets)}:{to_epoch_ms(plan.buckets[-1].start)}"
        token, cached = cache.lookup(["late"], key)
        settled = Counter(json.loads(cached)) if cached is not None else None
    counts, computed_settled = count_starts_by_country(window, store, now, settings.retention, settled)
    if plan.buckets and settled is None:
        cache.store(token, key, json.dumps(computed_settled).encode(), SETTLED_CACHE_TTL_SECONDS)
    ordered = sorted(((country, n) for country, n in counts.items() if n > 0), key=lambda item: (-item[1], item[0]))
    return CountryCounts(window, ordered)


def starts_of_country(country: str, hours: int, limit: int, cursor: str | None, store: StartsStore, clock: Clock,
                      settings: Settings, cache: ReadCache | None = None) -> CountryPage:
    """One page of the country's starts in the window, newest first; the cursor pins the first page's window."""
    cache = cache or NoCache()
    country = country.upper()
    signing_key = settings.cursor_signing_key.get_secret_value().encode()
    after: Position | None = None
    if cursor:
        decoded = decode_cursor(cursor, signing_key)
        if (decoded.country, decoded.hours) != (country, hours):
            raise BadRequestError(
                "cursor belongs to another query",
                [{"parameter": "cursor", "in": "query",
                  "reason": f"issued for country={decoded.country}&hours={decoded.hours}"}],
            )
        window = Window(decoded.window_start, decoded.window_end)
        after = Position(decoded.last_ts, decoded.last_session_id)
    else:
        window = window_for(hours, clock.now(), settings.retention)
    key = f"country:{country}:{limit}:{to_epoch_ms(window.start)}:{to_epoch_ms(window.end)}:{cursor or ''}"
    token, cached = cache.lookup(["starts"], key)
    if cached is not None:
        rows, next_cursor = _page_from_json(cached)
        return CountryPage(window, rows, next_cursor)
    page: Page = list_country_starts(country, window, limit, after, store, clock.now(), settings.retention)
    next_cursor = None
    if page.next_position is not None:
        next_cursor = encode_cursor(
            CountryCursor(country, hours, window.start, window.end, page.next_position.ts,
                          page.next_position.session_id),
            signing_key,
        )
    cache.store(token, key, _page_to_json(page.starts, next_cursor), PAGE_CACHE_TTL_SECONDS)
    return CountryPage(window, page.starts, next_cursor)


def _page_to_json(rows: list[StartRow], next_cursor: str | None) -> bytes:
    return json.dumps({"rows": [[to_epoch_ms(r.ts), str(r.session_id), r.player_id, r.country] for r in rows],
                       "next": next_cursor}).encode()


def _page_from_json(data: bytes) -> tuple[list[StartRow], str | None]:
    decoded = json.loads(data)
    rows = [StartRow(from_epoch_ms(ts), UUID(sid), player, country) for ts, sid, player, country in decoded["rows"]]
    return rows, decoded["next"]
