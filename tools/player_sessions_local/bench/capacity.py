"""The open-model capacity of the served path: the highest fixed arrival rate of a dashboard-and-game mix
(4 in 10 ingest batches, 3 player reads, 2 metric reads, 1 country page) that keeps every route's p90 under
500 ms with no 5xx and (nearly) nothing refused; each rate for a fixed time, stepping up until one does not
hold, then halfway back; down by halves when the first does not hold (measure.open_model.search_capacity).
Past it the gateway refuses (429) at once: how fast the refusals came is reported too."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from player_sessions_local.bench.latency import RoutePlan
from player_sessions_local.bench.options import API_KEY, BenchOptions, say
from player_sessions_local.measure.http_client import Request
from player_sessions_local.measure.open_model import MixEntry, RateResult, find_capacity

RATES = (40.0, 60.0, 80.0, 100.0, 120.0, 160.0, 200.0)
QUICK_RATES = (10.0, 20.0)
P90_LIMIT_MS = 500.0
TARGET_CAPACITY = 60.0
"""1.5 times the 40 requests/s the served path held before refusals replaced its unbounded queue."""
TARGET_REFUSAL_P99_MS = 100.0
MIX_WEIGHTS = {"ingest": 0.4, "players": 0.3, "metric": 0.2, "page": 0.1}


@dataclass
class CapacityResult:
    capacity: float
    seconds: float
    rates: list[RateResult]

    def targets(self) -> list[tuple[str, bool]]:
        checks = [
            (
                f"open-model capacity >= {TARGET_CAPACITY:g} requests/s (every p90 <= {P90_LIMIT_MS:g} ms, no 5xx)",
                self.capacity >= TARGET_CAPACITY,
            )
        ]
        past = [rate for rate in self.rates if rate.rate > self.capacity and rate.refused.latencies_ms]
        if past:
            checks.append(
                (
                    f"past capacity, refusals answered within {TARGET_REFUSAL_P99_MS:g} ms (p99)",
                    all(rate.refused.percentile(0.99) <= TARGET_REFUSAL_P99_MS for rate in past),
                )
            )
        return checks

    def as_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "seconds_per_rate": self.seconds,
            "rates": [
                {
                    "rate": rate.rate,
                    "sent": rate.sent,
                    "server_errors": rate.server_errors,
                    "refused": len(rate.refused.latencies_ms),
                    "refused_p99_ms": rate.refused.percentile(0.99),
                    "routes": {route: stats.summary() for route, stats in rate.admitted.items()},
                }
                for rate in self.rates
            ],
        }


def mix_of(plans: Sequence[RoutePlan]) -> list[MixEntry]:
    """One entry per kind, from the cached configuration's plans signed as the studio (the open model's
    senders sign every request; the game clients' token plans are the latency phase's); the metric spread
    over its windows."""
    cached = [plan for plan in plans if plan.cache == "on" and plan.prove is None]
    entries = []
    for kind, weight in MIX_WEIGHTS.items():
        of_kind = [plan for plan in cached if plan.kind == kind]

        def make(rng: random.Random, of_kind: list[RoutePlan] = of_kind) -> Request:
            return rng.choice(of_kind).make_request(rng)

        entries.append(MixEntry(kind, weight, make))
    return entries


def measure_capacity(
    url: str, plans: Sequence[RoutePlan], options: BenchOptions, *, settle: Callable[[], object] | None = None
) -> CapacityResult:
    """``settle`` runs before each rate: the bench folds what the bursts and the rate before wrote, so that a
    rate is not judged by the tail an earlier one left."""
    seconds, seed = options.capacity_seconds, options.seed + 200
    rates = QUICK_RATES if options.quick else RATES
    say(f"capacity: open model, rates {', '.join(f'{r:g}' for r in rates)} requests/s, {seconds:g} s each")
    capacity, results = find_capacity(
        url,
        mix_of(plans),
        rates,
        seconds=seconds,
        p90_limit_ms=P90_LIMIT_MS,
        seed=seed,
        api_key=API_KEY,
        settle=settle,
    )
    for result in results:
        p90s = ", ".join(
            f"{route} {stats.percentile(0.9):.0f}"
            for route, stats in result.admitted.items()
            if stats.latencies_ms
        )
        say(
            f"  {result.rate:g}/s: sent {result.sent}, refused {len(result.refused.latencies_ms)}, "
            f"5xx {result.server_errors}; p90 ms {p90s}"
        )
    return CapacityResult(capacity, seconds, results)


def capacity_section(result: CapacityResult | None) -> list[str]:
    if result is None:
        return []
    lines = [
        "## Open-model capacity",
        "",
        (
            f"Requests sent at a fixed rate whatever the answers' latency, {result.seconds:g} s per rate, drawn "
            "4:3:2:1 from ingest batches, player reads, the metric (1 h to 8760 h) and country pages, through "
            "the cached configuration's gateway (its pool of four environments; past it, 429 at once). Latency "
            "counts from when a request was due; each rate starts once the builders have folded what the one "
            f"before wrote. Capacity: **{result.capacity:g} requests/s**, the highest rate "
            f"with every p90 under {P90_LIMIT_MS:g} ms, no 5xx and at most 1% refused."
        ),
        "",
        "| rate/s | sent | 5xx | refused | refusal p99 ms | ingest p90 | players p90 | metric p90 | page p90 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in result.rates:
        cells = [
            f"{rate.admitted[kind].percentile(0.9):.0f}" if rate.admitted[kind].latencies_ms else "-"
            for kind in MIX_WEIGHTS
        ]
        refused = rate.refused
        lines.append(
            f"| {rate.rate:g} | {rate.sent} | {rate.server_errors} | {len(refused.latencies_ms)} | "
            f"{refused.percentile(0.99):.0f} | " + " | ".join(cells) + " |"
            if refused.latencies_ms
            else f"| {rate.rate:g} | {rate.sent} | {rate.server_errors} | 0 | - | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]
