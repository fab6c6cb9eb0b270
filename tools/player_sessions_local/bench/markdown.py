"""summary.md: the benchmark's report, section by section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from player_sessions_local.bench.burst import burst_section
from player_sessions_local.bench.capacity import capacity_section
from player_sessions_local.bench.options import TARGET_HTTP_RATIO, TARGET_LOADER_RATIO
from player_sessions_local.bench.privacy import privacy_section
from player_sessions_local.bench.tables import (
    cpu_per_request_table,
    cpu_rows,
    latency_table,
    ratio_cell,
    rows_cell,
    throughput_table,
)

if TYPE_CHECKING:
    from player_sessions_local.bench.report import Summary


def render(summary: Summary) -> str:
    m, o, e = summary.machine, summary.options, summary.expected
    missed = [name for name, met in summary.targets() if not met]
    lines = [
        f"# Benchmark, {summary.started_at:%Y-%m-%d %H:%M} UTC",
        "",
        (
            f"**Machine**: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']} memory, {m['os']}; Python "
            f"{m['python']}, Cassandra {m['cassandra']}, {m['driver']}. Cassandra, Redis, the gateways and the "
            f"load generator all run on it; it is shared (load average {summary.load_before} before, "
            f"{summary.load_after} after)."
        ),
        "",
        (
            f"**Data**: {e.lines:,} generated events (seed {o.seed}, {o.days} days, generated in "
            f"{summary.generation_seconds:.1f} s): {len(e.starts):,} sessions started, {len(e.ends):,} ended, "
            f"{e.completed_count:,} completed, {len(e.completed):,} players with a completed session, "
            f"{len(e.starts_by_country)} countries. The ingest path writes {summary.row_statements:,} rows for them "
            "(session halves, start rows, arrivals, completed rows); the builder's folds come on top, off the "
            "request path. Retention "
            f"{o.retention_days or 'as configured (365)'} days."
        ),
        "",
        f"**Targets**: {'all met' if not missed else 'missed: ' + '; '.join(missed)}.",
        "",
        f"## Latency ({o.clients} concurrent clients, {o.seconds:g} s per route, through the local gateway)",
        "",
        (
            "Cache on: Redis as deployed (repeated questions are answered from it). Cache off: the gateway runs "
            "with `PLAYER_SESSIONS_CACHE_ENABLED=false`, so every request reads Cassandra (the cache-cold case). "
            "POST /events sends five fresh sessions of known players per batch; reads draw players and "
            "countries as the data has them; country pages draw hours from 1, 24, 168, 8760."
        ),
        "",
        *latency_table(summary.latencies),
        "",
        *single_client_section(summary),
        *fold_section(summary),
        *seed_section(summary),
        *live_section(summary),
        *burst_section(summary.bursts),
        *capacity_section(summary.capacity),
        *privacy_section(summary.privacy),
        "## Throughput (same run, same file)",
        "",
        *throughput_table(
            summary.bare,
            [
                (summary.loader, TARGET_LOADER_RATIO, summary.loader_counts),
                (summary.http, TARGET_HTTP_RATIO, summary.http_counts),
            ],
        ),
        "",
        f"- Bare loop: {summary.bare.detail}.",
        f"- Loader: {summary.loader.detail}.",
        f"- HTTP ingest: {summary.http.detail}.",
        "- Re-sent: requests (bare loop), chunks (loader) or batches (HTTP, after a 503) sent again after a "
        "timeout; every write is idempotent, so a re-send stores nothing twice. Before each phase the bench "
        "waited for Cassandra to finish flushing and compacting the previous one's writes ("
        + ", ".join(f"{w:.0f} s" for w in summary.quiet_waits)
        + ").",
        "",
        "## Where the CPU went (2 cores shared by everything)",
        "",
        (
            "CPU milliseconds per 1,000 events, per write path: the path's own processes (bare-loop workers; loader "
            "and its workers; the gateway, its execution environments and the HTTP clients), the local Cassandra and Redis, and what the rest "
            "of the machine used meanwhile (other people's work on this shared machine, in CPU seconds per second "
            "of the phase, out of 2)."
        ),
        "",
        "| path | own processes | Cassandra | Redis | total | rest of the machine |",
        "|---|---:|---:|---:|---:|---:|",
        *cpu_rows([summary.bare, summary.loader, summary.http]),
        "",
        "## Rows counted afterwards",
        "",
        "| keyspace | table | expected | found | missing | extra |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, counts in (
        ("bare loop", summary.bare_counts),
        ("loader", summary.loader_counts),
        ("HTTP ingest", summary.http_counts),
    ):
        lines += [
            f"| {name} | {c.table} | {c.expected:,} | {c.found:,} | {c.missing} | {c.extra} |" for c in counts
        ]
    check = summary.metric_check
    lines.append(
        f"| loader | country metric total, 8760 h (API) | {check.expected_total:,} | {check.total:,} | "
        f"{max(0, check.expected_total - check.total)} | {max(0, check.total - check.expected_total)} |"
    )
    for label, wanted, got in (
        ("sessions online (API)", check.expected_online, check.online),
        ("completed sessions with a length, 8760 h (API)", check.expected_completed, check.completed),
    ):
        lines.append(
            f"| loader | {label} | {wanted:,} | {got:,} | {max(0, wanted - got)} | {max(0, got - wanted)} |"
        )
    lines += [
        "",
        f"Errors: {summary.errors}. Rows lost or extra: {summary.lost_rows}.",
        "",
        "![latency per route](latency.png)",
        "",
    ]
    return "\n".join(lines)


def single_client_section(summary: Summary) -> list[str]:
    if not summary.single_latencies:
        return []
    return [
        f"### The same routes, one client at a time ({summary.options.single_seconds:g} s per route)",
        "",
        (
            "What one request costs when it does not wait for a core held by another client, by Cassandra or "
            "by a neighbour; the targets are judged on the table above."
        ),
        "",
        *latency_table(summary.single_latencies),
        "",
        (
            "CPU milliseconds per request, by component, in the same one-client passes: the gateway process, the "
            "execution environments' emulators (`aws-lambda-rie`) and runtimes (`awslambdaric` and the handler), the "
            "local Cassandra and Redis, this process (the client), and the rest of the machine (the rollup builders' "
            "process among it). Deployed, API Gateway and Lambda's own invocation path cost no function CPU: what the "
            "gateway and the emulators spend here is the local stand-in for them."
        ),
        "",
        *cpu_per_request_table(summary.single_latencies),
        "",
    ]


def fold_section(summary: Summary) -> list[str]:
    c = summary.metric_check
    rate = c.starts_folded / c.fold_seconds if c.fold_seconds else 0
    return [
        "## The builder after the load",
        "",
        (
            f"The scheduled builder's work after a bulk load, off the request path: {c.starts_folded:,} starts "
            f"folded into the rollups in {c.fold_seconds:.1f} s ({rate:,.0f} starts/s). Then the first "
            f"country-metric request over 8760 hours took {c.seconds * 1000:,.0f} ms and counted {c.total:,} "
            f"starts (the file holds {c.expected_total:,})."
        ),
        "",
    ]


def seed_section(summary: Summary) -> list[str]:
    p = summary.seed
    if p is None:
        return []
    return [
        "## A page against the seed's unpaged list (one client, uncached, same starts)",
        "",
        (
            f"{p.label}: our `GET /countries/{{c}}/starts?hours=24&limit=1000` through the gateway, against the "
            "seed project's answer rebuilt on the same data (one partition per country, read whole, JSON over "
            "HTTP; bench/seed_reference.py), requests alternating."
        ),
        "",
        "| answer | starts | p50 ms | p90 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
        f"| our page | {p.rows} | {p.ours(0.5):.1f} | {p.ours(0.9):.1f} | {p.ours(0.99):.1f} |",
        (
            f"| seed's unpaged list | {p.reference_rows} | {p.reference(0.5):.1f} | {p.reference(0.9):.1f} | "
            f"{p.reference(0.99):.1f} |"
        ),
        "",
    ]


def live_section(summary: Summary) -> list[str]:
    v = summary.live
    lines = [
        "## Live traffic",
        "",
        (
            f"One client. Quiet: the loaded data set as it is. Loaded: {v.bulk_sessions:,} sessions started within "
            "the last ten minutes, nine in ten of them ended too (each end between its start and now), stored "
            f"({v.bulk_seconds:.1f} s) and folded ({v.fold_seconds:.1f} s later). "
            "Rows: Cassandra rows read per request (p50 / max), from the gateway's log."
        ),
        "",
        (
            "| route | quiet p50 | quiet p90 | quiet rows | loaded p50 | loaded p90 | loaded p99 | loaded rows | "
            "p90 ratio |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for quiet, loaded in zip(v.quiet, v.loaded, strict=True):
        lines.append(
            f"| `{quiet.route}` | {quiet.percentile(0.5):.1f} | {quiet.percentile(0.9):.1f} | "
            f"{rows_cell(v.quiet_costs.rows(quiet.route))} | {loaded.percentile(0.5):.1f} | "
            f"{loaded.percentile(0.9):.1f} | {loaded.percentile(0.99):.1f} | "
            f"{rows_cell(v.loaded_costs.rows(loaded.route))} | {v.ratio(quiet.route):.2f} |"
        )
    lines += [
        "",
        (
            f"Live: POST /events at {v.ingest_target:g} starts/s (achieved {v.ingest_rate:.1f}; each stamped up "
            f"to two minutes before it is sent) for {v.live_seconds:g} s, while one reader polls every "
            "0.25 s; the first and the last third of the run."
        ),
        "",
        "| route | third | requests | p50 ms | p90 ms | p99 ms | rows (p50 / max) | cache hit ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, stats, costs in (
        ("first", v.live_first, v.live_costs_first),
        ("last", v.live_last, v.live_costs_last),
    ):
        for r in stats:
            lines.append(
                f"| `{r.route}` | {name} | {len(r.latencies_ms)} | {r.percentile(0.5):.1f} | "
                f"{r.percentile(0.9):.1f} | {r.percentile(0.99):.1f} | {rows_cell(costs.rows(r.route))} | "
                f"{ratio_cell(costs.hit_ratio(r.route))} |"
            )
    lines += ["", "| exact count | expected | counted |", "|---|---:|---:|"]
    lines += [
        f"| {c.label} | {c.expected:,} | {c.counted:,}{'' if c.exact else ' **differs**'} |" for c in v.checks
    ]
    return [*lines, ""]
