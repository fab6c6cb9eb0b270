"""The concurrency benchmark's summary (`make bench-concurrency`): the closed-loop tables, the cold starts,
CPU per request, each route's open-model capacity, and the targets."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from player_sessions_local import route_capacity
from player_sessions_local.cpu_profile import COMPONENTS, CpuProfile

if TYPE_CHECKING:
    from player_sessions_local.concurrency_bench import RouteRun

MODES = ("pool", "one environment")
P90_TARGET_MS = 100
THROUGHPUT_TARGET = 1.5


def summary(
    runs: list[RouteRun],
    profiles: dict[tuple[str, str], CpuProfile],
    cold: dict[str, list[float]],
    capacities: Sequence[route_capacity.RouteCapacity],
    *,
    options: argparse.Namespace,
    machine: dict[str, str],
) -> str:
    by_key = {(r.route, r.mode, r.clients): r for r in runs}
    routes = list(dict.fromkeys(r.route for r in runs))
    n = options.clients
    lines = [
        f"# Concurrency through the local gateway ({machine['date']}, {machine['commit']})",
        "",
        (
            f"{machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory']}, Cassandra "
            f"{machine['cassandra']}, load average at start {machine['load']}. "
            f"{options.events:,} generated events loaded; {options.seconds:g} s per route and pass; "
            f"pool of at most {options.max_concurrency or 'the default number of'} environments; cache on."
        ),
        "",
        f"## {n} concurrent clients",
        "",
        "| route | pool req/s | p50 | p90 | p99 | one env req/s | p50 | p90 | p99 | throughput ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in routes:
        pool, one = by_key[(route, "pool", n)], by_key[(route, "one environment", n)]
        ratio = pool.throughput / one.throughput if one.throughput else float("nan")
        lines.append(f"| `{route}` | {_cells(pool)} | {_cells(one)} | {ratio:.2f} |")
    lines += [
        "",
        "## One client",
        "",
        "| route | pool req/s | p50 | p90 | p99 | one env req/s | p50 | p90 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in routes:
        pool, one = by_key[(route, "pool", 1)], by_key[(route, "one environment", 1)]
        lines.append(f"| `{route}` | {_cells(pool)} | {_cells(one)} |")
    lines += [
        "",
        "## Cold starts (pool): init duration per function, from the emulator's INIT REPORT",
        "",
        "| function | alone (first environment) | later ones, under load: median (min-max) | environments |",
        "|---|---:|---:|---:|",
    ]
    for function, durations in sorted(cold.items()):
        rest = durations[1:]
        spread = f"{statistics.median(rest):.0f} ms ({min(rest):.0f}-{max(rest):.0f})" if rest else "-"
        lines.append(f"| {function} | {durations[0]:.0f} ms | {spread} | {len(durations)} |")
    lines += [
        "",
        f"## CPU per request with {n} clients (ms), and cores busy",
        "",
        "| route | gateway | " + " | ".join(COMPONENTS[1:]) + " | cores busy |",
        "|---|" + "---:|" * (len(COMPONENTS) + 1),
    ]
    for route in routes:
        for mode in MODES:
            profile = profiles[(route, mode)]
            per = profile.per_request_ms(len(by_key[(route, mode, n)].latencies_ms))
            lines.append(
                f"| `{route}` {mode} | "
                + " | ".join(f"{per[c]:.1f}" for c in COMPONENTS)
                + f" | {profile.cores_busy():.2f} |"
            )
    if capacities:
        lines += ["", *route_capacity.capacity_section(capacities, *MODES, options.capacity_seconds)]
    errors = sum(r.errors for r in runs) + sum(
        rate.server_errors for found in capacities for rate in found.rates
    )
    p90_met = all(by_key[(r, "pool", n)].percentile(0.9) <= P90_TARGET_MS for r in routes)
    ratios = [
        by_key[(r, "pool", n)].throughput / by_key[(r, "one environment", n)].throughput for r in routes
    ]
    lines += [
        "",
        "## Targets",
        "",
        (
            f"- every route's p90 <= {P90_TARGET_MS} ms with {n} clients through the pool: "
            f"{'met' if p90_met else 'missed'}"
        ),
        (
            f"- throughput >= {THROUGHPUT_TARGET}x the one-environment gateway's with {n} clients: "
            f"{'met' if min(ratios) >= THROUGHPUT_TARGET else 'missed'} "
            f"(ratios {min(ratios):.2f} to {max(ratios):.2f})"
        ),
        *([route_capacity.capacity_target(capacities, *MODES)] if capacities else []),
        f"- errors (5xx and failed requests): {errors}",
    ]
    return "\n".join(lines) + "\n"


def _cells(run: RouteRun) -> str:
    """Throughput, then p50, p90 and p99 in ms, as table cells."""
    return " | ".join([f"{run.throughput:.0f}", *(f"{run.percentile(q):.1f}" for q in (0.5, 0.9, 0.99))])
