"""What each request read, from the gateway's log: the ``request work`` line every local invocation writes after
it (player_sessions_local.work), read incrementally while a scenario runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RequestCost:
    route: str
    rows: int
    cache_hits: int
    cache_misses: int


@dataclass
class ReadCosts:
    """The gateway's per-request log lines, in order: rows read and cache lookups of each request."""

    requests: list[RequestCost] = field(default_factory=list)

    def of(self, route: str) -> list[RequestCost]:
        return [cost for cost in self.requests if cost.route == route]

    def rows(self, route: str) -> list[int]:
        return sorted(cost.rows for cost in self.of(route))

    def hit_ratio(self, route: str) -> float | None:
        """Hits over lookups; None when the route looked nothing up (the last hour is read, never cached)."""
        hits = sum(cost.cache_hits for cost in self.of(route))
        lookups = hits + sum(cost.cache_misses for cost in self.of(route))
        return hits / lookups if lookups else None

    def thirds(self) -> tuple[ReadCosts, ReadCosts]:
        """The first and the last third of each route's requests."""
        first, last = ReadCosts(), ReadCosts()
        for route in dict.fromkeys(cost.route for cost in self.requests):
            costs = self.of(route)
            third = max(1, len(costs) // 3)
            first.requests += costs[:third]
            last.requests += costs[-third:]
        return first, last


def read_costs(log_path: Path, offset: int) -> tuple[ReadCosts, int]:
    """The per-request work lines written to the gateway's log since ``offset`` (player_sessions_local.work);
    returns the new offset."""
    costs = ReadCosts()
    with log_path.open("rb") as log:
        log.seek(offset)
        data = log.read()
    for line in data.splitlines():
        if b'"message":"request work"' not in line:
            continue
        try:
            record = json.loads(line[line.index(b"{") :])
        except ValueError:
            continue
        costs.requests.append(
            RequestCost(
                record.get("route", "?"),
                record.get("rows_read", 0),
                record.get("cache_hits", 0),
                record.get("cache_misses", 0),
            )
        )
    return costs, offset + len(data)
