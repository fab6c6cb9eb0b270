"""Each route's open-model capacity through the pool of execution environments (`make serve`) against the
one-environment gateway (``--in-process``), measured in one run by `make bench-concurrency`: the highest fixed
arrival rate of that route alone that keeps its p90 at or under 100 ms with no error (no 5xx, nothing refused).
SPEC.md's target: on every route, the pool's at least 0.7 of the one environment's.

Rates step up through ``RATES`` to the first that does not hold, then narrow twice halfway back
(measure.open_model.search_capacity), so a capacity is known to within a quarter of the step it fell in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from player_sessions_local.measure.http_client import MakeRequest
from player_sessions_local.measure.open_model import MixEntry, RateResult, find_capacity

P90_LIMIT_MS = 100.0
TARGET_RATIO = 0.7
RATES = (10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0)
"""Below the deployed usage plan's 500 requests/s, which both gateways emulate (past it they refuse)."""
REFINEMENTS = 2


@dataclass
class RouteCapacity:
    route: str
    mode: str
    capacity: float
    rates: list[RateResult]

    def as_json(self) -> dict:
        return {
            "route": self.route,
            "mode": self.mode,
            "capacity": self.capacity,
            "rates": [
                {
                    "rate": rate.rate,
                    "sent": rate.sent,
                    "server_errors": rate.server_errors,
                    "refused": len(rate.refused.latencies_ms),
                    **{
                        key: value
                        for stats in rate.admitted.values()
                        for key, value in stats.summary().items()
                    },
                }
                for rate in self.rates
            ],
        }


def measure_capacities(
    urls: Mapping[str, str],
    routes: Sequence[tuple[str, MakeRequest, Callable[[], object] | None]],
    *,
    seconds: float,
    api_key: str,
    seed: int,
    say: Callable[[str], None],
    warm: Callable[[str, str], object] | None = None,
) -> list[RouteCapacity]:
    """For each route (its name, its requests, and what to wait for before each rate: the builders' fold after
    a route that writes), each gateway in ``urls`` in turn, one search each. ``warm(route, mode)`` runs before
    a search: the capacity is the warm service's (cold starts are measured apart); an environment left idle
    while other routes were searched has been retired by then."""
    found = []
    for index, (route, make_request, settle) in enumerate(routes):
        for mode, url in urls.items():
            if warm is not None:
                warm(route, mode)
            capacity, rates = find_capacity(
                url,
                [MixEntry(route, 1.0, make_request)],
                RATES,
                seconds=seconds,
                p90_limit_ms=P90_LIMIT_MS,
                seed=seed + 100 * index,
                api_key=api_key,
                settle=settle,
                refused_at_most=0.0,
                refinements=REFINEMENTS,
            )
            found.append(RouteCapacity(route, mode, capacity, rates))
            tried = ", ".join(f"{rate.rate:g} {_verdict(rate)}" for rate in rates)
            say(f"{route:42} {mode:16} capacity {capacity:g} requests/s ({tried})")
    return found


def _verdict(rate: RateResult) -> str:
    if rate.holds(P90_LIMIT_MS, 0.0):
        return "held"
    refused, stats = len(rate.refused.latencies_ms), next(iter(rate.admitted.values()))
    p90 = f"p90 {stats.percentile(0.9):.0f} ms" if stats.latencies_ms else "nothing answered"
    return f"failed: {p90}, {refused} refused, {rate.server_errors} 5xx"


def ratios(found: Sequence[RouteCapacity], served: str, reference: str) -> dict[str, float | None]:
    """Per route, the served gateway's capacity over the reference's (None when the reference held nothing)."""
    by_key = {(item.route, item.mode): item.capacity for item in found}
    routes = dict.fromkeys(item.route for item in found)
    return {
        route: by_key[(route, served)] / by_key[(route, reference)] if by_key[(route, reference)] else None
        for route in routes
    }


def capacity_section(
    found: Sequence[RouteCapacity], served: str, reference: str, seconds: float
) -> list[str]:
    """The summary's table: each route's capacity on both gateways and their ratio."""
    by_key = {(item.route, item.mode): item.capacity for item in found}
    lines = [
        f"## Open-model capacity per route (p90 <= {P90_LIMIT_MS:g} ms, no error)",
        "",
        (
            f"Each route alone, requests sent at a fixed rate whatever the answers' latency ({seconds:g} s a "
            "rate, latency counted from when a request was due): the highest rate with its p90 within the "
            "limit, no 5xx and nothing refused."
        ),
        "",
        f"| route | {served} requests/s | {reference} requests/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for route, ratio in ratios(found, served, reference).items():
        cells = [_rate_cell(by_key[(route, mode)]) for mode in (served, reference)]
        ratio_cell = (
            "-" if ratio is None else f"<= {ratio:.2f}" if cells[1].startswith(">=") else f"{ratio:.2f}"
        )
        lines.append(f"| `{route}` | {cells[0]} | {cells[1]} | {ratio_cell} |")
    return lines


def _rate_cell(capacity: float) -> str:
    """The capacity, or at least the highest rate tried when that one held too."""
    return f">= {capacity:g}" if capacity >= RATES[-1] else f"{capacity:g}"


def capacity_target(found: Sequence[RouteCapacity], served: str, reference: str) -> str:
    """SPEC.md's target, met only when every route's ratio is known and at least TARGET_RATIO."""
    per_route = ratios(found, served, reference)
    known = [ratio for ratio in per_route.values() if ratio is not None]
    met = bool(known) and len(known) == len(per_route) and min(known) >= TARGET_RATIO
    spread = f" (ratios {min(known):.2f} to {max(known):.2f})" if known else ""
    return (
        f"- each route's open-model capacity through the {served} >= {TARGET_RATIO:g} of the {reference}'s: "
        f"{'met' if met else 'missed'}{spread}"
    )
