"""Session starts by country: the two questions the API asks, and everything that answers them exactly.

- ``queries``: the questions as the API asks them (counts for every country; one country's starts, page by
  page), with their caching.
- ``window``: a window and how it splits into rollups, the unfolded tail and the partial first second.
- ``counting``: exact counts from those parts.
- ``settled``: the tail's settled slots, kept by a reader's environment for its next requests.
- ``listing``: one country's starts, newest first, hour by hour.
- ``rollups``: what a bucket's rollup rows add up to.
- ``builder``: folds arrivals into the rollups, off the request path.
- ``schedule``: when each scheduled run of the builder folds.
- ``cursor``: the listing's signed page cursors.
"""

from player_sessions.domain.country_starts.queries import (
    CountryCounts,
    CountryPage,
    CountryStarts,
)
from player_sessions.domain.country_starts.window import Window, window_for

__all__ = ["CountryCounts", "CountryPage", "CountryStarts", "Window", "window_for"]
