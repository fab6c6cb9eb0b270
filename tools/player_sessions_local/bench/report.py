"""The machine, the report (summary.md, results.json, the console) and the latency plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.settings import Settings
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.latency import RouteLatency, RouteStatsPair, route_label
from player_sessions_local.bench.live import LiveResult, ReadCosts, RouteStats
from player_sessions_local.bench.options import TARGET_HTTP_RATIO, TARGET_LOADER_RATIO, BenchOptions
from player_sessions_local.bench.throughput import Throughput
from player_sessions_local.bench.verification import MetricCheck, RowCount


def machine_description(settings: Settings) -> dict[str, str]:
    cpu_model = "unknown"
    memory = "unknown"
    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        kib = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    connection = CassandraConnection(settings, use_keyspace=False)
    try:
        cassandra = (
            connection.session().execute("SELECT release_version FROM system.local").one().release_version
        )
    finally:
        connection.close()
    import cassandra as driver

    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cassandra": cassandra,
        "driver": f"cassandra-driver {driver.__version__}",
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "no lookups" if value is None else f"{value:.2f}"


def _rows(rows: list[int]) -> str:
    return f"{rows[len(rows) // 2]} / {rows[-1]}" if rows else "-"


def latency_table(latencies: Sequence[RouteLatency]) -> list[str]:
    lines = [
        "| route | cache | requests | errors | p50 ms | p90 ms | p99 ms | target p90 | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in latencies:
        lines.append(
            f"| `{r.name}` | {r.cache} | {len(r.latencies_ms)} | {r.errors} | {_ms(r.percentile(0.5))} | "
            f"{_ms(r.percentile(0.9))} | {_ms(r.percentile(0.99))} | {r.target_ms:g} ms | "
            f"{'yes' if r.met else '**no**'} |"
        )
    return lines


def throughput_table(
    bare: Throughput, paths: Sequence[tuple[Throughput, float, list[RowCount]]]
) -> list[str]:
    lines = [
        "| path | events | seconds | events/s | ratio to bare | target | errors | re-sent | rows lost | rows extra |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {bare.path} | {bare.events:,} | {bare.seconds:.1f} | {bare.events_per_second:,.0f} | 1.00 | | "
            f"{bare.errors} | {bare.retries} | | |"
        ),
    ]
    for path, target, counts in paths:
        ratio = path.events_per_second / bare.events_per_second
        lines.append(
            f"| {path.path} | {path.events:,} | {path.seconds:.1f} | {path.events_per_second:,.0f} | "
            f"{ratio:.2f} | >= {target:.2f} {'yes' if ratio >= target else '**no**'} | {path.errors} | "
            f"{path.retries} | {sum(c.missing for c in counts)} | {sum(c.extra for c in counts)} |"
        )
    return lines


def cpu_rows(paths: Sequence[Throughput]) -> list[str]:
    rows = []
    for path in paths:
        if path.cpu is None:
            continue
        per = path.cpu.per_thousand(path.events)
        rows.append(
            f"| {path.path} | {per['client'] * 1000:,.0f} | {per['cassandra'] * 1000:,.0f} | "
            f"{per['redis'] * 1000:,.0f} | {sum(per.values()) * 1000:,.0f} | "
            f"{path.cpu.others / path.cpu.wall if path.cpu.wall else 0:.2f} |"
        )
    return rows


def plot_latency(latencies: Sequence[RouteLatency], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in latencies if r.latencies_ms]
    labels = [route_label(r) for r in shown]
    figure, axes = plt.subplots(figsize=(12, 0.45 * len(shown) + 1.8))
    positions = list(range(len(shown), 0, -1))
    axes.boxplot(
        [r.latencies_ms for r in shown],
        positions=positions,
        orientation="horizontal",
        whis=(1, 99),
        showfliers=False,
        widths=0.6,
        medianprops={"color": "black"},
    )
    for position, result in zip(positions, shown, strict=True):
        axes.plot(
            result.percentile(0.9),
            position,
            marker="D",
            color="tab:blue",
            markersize=6,
            label="p90" if position == positions[0] else None,
        )
        axes.plot(
            result.percentile(0.99),
            position,
            marker="o",
            color="tab:orange",
            markersize=5,
            label="p99" if position == positions[0] else None,
        )
        axes.plot(
            [result.target_ms] * 2,
            [position - 0.4, position + 0.4],
            color="red",
            linewidth=2,
            label="p90 target" if position == positions[0] else None,
        )
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale); box p25-p75, whiskers p1-p99")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


@dataclass
class Summary:
    options: BenchOptions
    machine: dict[str, str]
    started_at: datetime
    load_before: str
    load_after: str
    generation_seconds: float
    expected: ExpectedRows
    row_statements: int
    bare: Throughput
    bare_counts: list[RowCount]
    loader: Throughput
    loader_counts: list[RowCount]
    http: Throughput
    http_counts: list[RowCount]
    metric_check: MetricCheck
    latencies: list[RouteLatency]
    single_latencies: list[RouteLatency]
    """The same routes, one client at a time: what a request costs without waiting for a core."""
    quiet_waits: list[float]
    """Seconds waited before each measured write phase for Cassandra to finish flushing and compacting."""
    seed: RouteStatsPair
    live: LiveResult

    @property
    def loader_ratio(self) -> float:
        return self.loader.events_per_second / self.bare.events_per_second

    @property
    def http_ratio(self) -> float:
        return self.http.events_per_second / self.bare.events_per_second

    @property
    def errors(self) -> int:
        return (
            self.bare.errors
            + self.loader.errors
            + self.http.errors
            + self.live.errors
            + sum(r.errors for r in [*self.latencies, *self.single_latencies])
        )

    @property
    def lost_rows(self) -> int:
        counts = self.bare_counts + self.loader_counts + self.http_counts
        metric_gap = abs(self.metric_check.total - self.metric_check.expected_total)
        live_gap = sum(abs(check.expected - check.counted) for check in self.live.checks)
        return sum(c.missing + c.extra for c in counts) + metric_gap + live_gap

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.lost_rows == 0

    def targets(self) -> list[tuple[str, bool]]:
        checks = [(f"p90 {route_label(r)} <= {r.target_ms:g} ms", r.met) for r in self.latencies]
        checks.append(
            (
                f"loader >= {TARGET_LOADER_RATIO:.0%} of the bare loop",
                self.loader_ratio >= TARGET_LOADER_RATIO,
            )
        )
        checks.append(
            (f"HTTP ingest >= {TARGET_HTTP_RATIO:.0%} of the bare loop", self.http_ratio >= TARGET_HTTP_RATIO)
        )
        checks.append(
            (f"a page of {self.seed.rows} starts no slower than the seed's unpaged list (p90)", self.seed.met)
        )
        checks += self.live.targets()
        checks.append(("no error, nothing lost, every count exact", self.clean))
        return checks

    def markdown(self) -> str:
        m, o, e = self.machine, self.options, self.expected
        missed = [name for name, met in self.targets() if not met]
        lines = [
            f"# Benchmark, {self.started_at:%Y-%m-%d %H:%M} UTC",
            "",
            (
                f"**Machine**: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']} memory, {m['os']}; Python "
                f"{m['python']}, Cassandra {m['cassandra']}, {m['driver']}. Cassandra, Redis, the gateways and the "
                f"load generator all run on it; it is shared (load average {self.load_before} before, "
                f"{self.load_after} after)."
            ),
            "",
            (
                f"**Data**: {e.lines:,} generated events (seed {o.seed}, {o.days} days, generated in "
                f"{self.generation_seconds:.1f} s): {len(e.starts):,} sessions started, {len(e.ends):,} ended, "
                f"{e.completed_count:,} completed, {len(e.completed):,} players with a completed session, "
                f"{len(e.starts_by_country)} countries. The ingest path writes {self.row_statements:,} rows for them "
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
            *latency_table(self.latencies),
            "",
            *self._single_client_section(),
            *self._fold_section(),
            *self._seed_section(),
            *self._live_section(),
            "## Throughput (same run, same file)",
            "",
            *throughput_table(
                self.bare,
                [
                    (self.loader, TARGET_LOADER_RATIO, self.loader_counts),
                    (self.http, TARGET_HTTP_RATIO, self.http_counts),
                ],
            ),
            "",
            f"- Bare loop: {self.bare.detail}.",
            f"- Loader: {self.loader.detail}.",
            f"- HTTP ingest: {self.http.detail}.",
            "- Re-sent: requests (bare loop), chunks (loader) or batches (HTTP, after a 503) sent again after a "
            "timeout; every write is idempotent, so a re-send stores nothing twice. Before each phase the bench "
            "waited for Cassandra to finish flushing and compacting the previous one's writes ("
            + ", ".join(f"{w:.0f} s" for w in self.quiet_waits)
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
            *cpu_rows([self.bare, self.loader, self.http]),
            "",
            "## Rows counted afterwards",
            "",
            "| keyspace | table | expected | found | missing | extra |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, counts in (
            ("bare loop", self.bare_counts),
            ("loader", self.loader_counts),
            ("HTTP ingest", self.http_counts),
        ):
            lines += [
                f"| {name} | {c.table} | {c.expected:,} | {c.found:,} | {c.missing} | {c.extra} |"
                for c in counts
            ]
        check = self.metric_check
        lines.append(
            f"| loader | country metric total, 8760 h (API) | {check.expected_total:,} | {check.total:,} | "
            f"{max(0, check.expected_total - check.total)} | {max(0, check.total - check.expected_total)} |"
        )
        lines += [
            "",
            f"Errors: {self.errors}. Rows lost or extra: {self.lost_rows}.",
            "",
            "![latency per route](latency.png)",
            "",
        ]
        return "\n".join(lines)

    def _fold_section(self) -> list[str]:
        c = self.metric_check
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

    def _seed_section(self) -> list[str]:
        p = self.seed
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

    def _live_section(self) -> list[str]:
        v = self.live
        lines = [
            "## Live traffic",
            "",
            (
                f"One client. Quiet: the loaded data set as it is. Loaded: {v.bulk_starts:,} starts stamped within "
                f"the last ten minutes stored ({v.bulk_seconds:.1f} s) and folded ({v.fold_seconds:.1f} s later). "
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
                f"{_rows(v.quiet_costs.rows(quiet.route))} | {loaded.percentile(0.5):.1f} | "
                f"{loaded.percentile(0.9):.1f} | {loaded.percentile(0.99):.1f} | "
                f"{_rows(v.loaded_costs.rows(loaded.route))} | {v.ratio(quiet.route):.2f} |"
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
                    f"{r.percentile(0.9):.1f} | {r.percentile(0.99):.1f} | {_rows(costs.rows(r.route))} | "
                    f"{_ratio(costs.hit_ratio(r.route))} |"
                )
        lines += ["", "| exact count | expected | counted |", "|---|---:|---:|"]
        lines += [
            f"| {c.label} | {c.expected:,} | {c.counted:,}{'' if c.exact else ' **differs**'} |"
            for c in v.checks
        ]
        return [*lines, ""]

    def _live_console(self) -> list[str]:
        v = self.live
        lines = [
            f"{quiet.route}: quiet p90 {quiet.percentile(0.9):.1f} ms, with {v.bulk_starts:,} starts "
            f"{loaded.percentile(0.9):.1f} ms (x{v.ratio(quiet.route):.2f})"
            for quiet, loaded in zip(v.quiet, v.loaded, strict=True)
        ]
        lines += [
            f"{r.route} at {v.ingest_target:g} starts/s, last third: p90 {r.percentile(0.9):.1f} ms"
            for r in v.live_last
        ]
        lines.append("counts exact" if all(c.exact for c in v.checks) else "COUNTS DIFFER")
        return lines

    def _live_json(self) -> dict[str, Any]:
        v = self.live

        def stats(items: list[RouteStats], costs: ReadCosts) -> list[dict[str, Any]]:
            return [
                {
                    "route": r.route,
                    "requests": len(r.latencies_ms),
                    "errors": r.errors,
                    "p50_ms": r.percentile(0.5),
                    "p90_ms": r.percentile(0.9),
                    "p99_ms": r.percentile(0.99),
                    "rows_read": costs.rows(r.route),
                    "cache_hit_ratio": costs.hit_ratio(r.route),
                }
                for r in items
            ]

        return {
            "bulk_starts": v.bulk_starts,
            "bulk_seconds": v.bulk_seconds,
            "fold_seconds": v.fold_seconds,
            "quiet": stats(v.quiet, v.quiet_costs),
            "loaded": stats(v.loaded, v.loaded_costs),
            "live_first": stats(v.live_first, v.live_costs_first),
            "live_last": stats(v.live_last, v.live_costs_last),
            "ingest_rate": v.ingest_rate,
            "ingest_target": v.ingest_target,
            "ingest_errors": v.ingest_errors,
            "checks": [asdict(c) for c in v.checks],
        }

    def _single_client_section(self) -> list[str]:
        if not self.single_latencies:
            return []
        return [
            f"### The same routes, one client at a time ({self.options.single_seconds:g} s per route)",
            "",
            (
                "What one request costs when it does not wait for a core held by another client, by Cassandra or "
                "by a neighbour; the targets are judged on the table above."
            ),
            "",
            *latency_table(self.single_latencies),
            "",
        ]

    def console(self) -> str:
        lines = [
            "",
            f"{'route':58} {'requests':>8} {'errors':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'target':>7}",
        ]
        for r in self.latencies:
            lines.append(
                f"{route_label(r):58} "
                f"{len(r.latencies_ms):>8} {r.errors:>6} {r.percentile(0.5):>7.1f} "
                f"{r.percentile(0.9):>7.1f} {r.percentile(0.99):>7.1f} {r.target_ms:>7g}"
                f"{'' if r.met else '  MISSED'}"
            )
        lines += [
            (
                f"builder after the load: {self.metric_check.starts_folded:,} starts folded in "
                f"{self.metric_check.fold_seconds:.1f} s; first metric request over 8760 h "
                f"{self.metric_check.seconds * 1000:,.0f} ms"
            ),
            (
                f"page of {self.seed.rows} starts p90 {self.seed.ours(0.9):.1f} ms; seed's unpaged list "
                f"{self.seed.reference(0.9):.1f} ms"
            ),
            *(f"live {line}" for line in self._live_console()),
            "",
            (
                f"bare loop   {self.bare.events_per_second:>9,.0f} events/s ({self.bare.events:,} events, "
                f"{self.bare.retries} requests re-sent)"
            ),
            (
                f"loader      {self.loader.events_per_second:>9,.0f} events/s  ratio {self.loader_ratio:.2f} "
                f"(target >= {TARGET_LOADER_RATIO:.2f}; {self.loader.retries} chunks re-sent)"
            ),
            (
                f"HTTP ingest {self.http.events_per_second:>9,.0f} events/s  ratio {self.http_ratio:.2f} "
                f"(target >= {TARGET_HTTP_RATIO:.2f}, {self.http.events:,} events; {self.http.retries} batches re-sent)"
            ),
            f"errors {self.errors}, rows lost or extra {self.lost_rows}",
        ]
        missed = [name for name, met in self.targets() if not met]
        lines.append("targets: all met" if not missed else "targets missed: " + "; ".join(missed))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "machine": self.machine,
            "load_average": {"before": self.load_before, "after": self.load_after},
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.options).items()},
            "latency": [
                {
                    "route": r.name,
                    "cache": r.cache,
                    "kind": r.kind,
                    "requests": len(r.latencies_ms),
                    "errors": r.errors,
                    "first_error": r.first_error,
                    "p50_ms": r.percentile(0.5),
                    "p90_ms": r.percentile(0.9),
                    "p99_ms": r.percentile(0.99),
                    "target_p90_ms": r.target_ms,
                    "met": r.met,
                }
                for r in self.latencies
            ],
            "latency_one_client": [
                {
                    "route": r.name,
                    "cache": r.cache,
                    "kind": r.kind,
                    "requests": len(r.latencies_ms),
                    "errors": r.errors,
                    "p50_ms": r.percentile(0.5),
                    "p90_ms": r.percentile(0.9),
                    "p99_ms": r.percentile(0.99),
                }
                for r in self.single_latencies
            ],
            "fold": {"seconds": self.metric_check.fold_seconds, "starts": self.metric_check.starts_folded},
            "first_metric_ms": self.metric_check.seconds * 1000,
            "seed_comparison": {
                "label": self.seed.label,
                "rows": self.seed.rows,
                "reference_rows": self.seed.reference_rows,
                **{f"ours_p{int(q * 100)}_ms": self.seed.ours(q) for q in (0.5, 0.9, 0.99)},
                **{f"seed_p{int(q * 100)}_ms": self.seed.reference(q) for q in (0.5, 0.9, 0.99)},
            },
            "live": self._live_json(),
            "throughput": {
                t.path: {
                    "events": t.events,
                    "seconds": t.seconds,
                    "events_per_second": t.events_per_second,
                    "errors": t.errors,
                    "retries": t.retries,
                    "detail": t.detail,
                    "cpu": asdict(t.cpu) if t.cpu else None,
                }
                for t in (self.bare, self.loader, self.http)
            },
            "ratios": {"loader": self.loader_ratio, "http": self.http_ratio},
            "rows": {
                name: [asdict(c) for c in counts]
                for name, counts in (
                    ("bare", self.bare_counts),
                    ("loader", self.loader_counts),
                    ("http", self.http_counts),
                )
            },
            "metric_check": asdict(self.metric_check),
            "quiet_waits_seconds": self.quiet_waits,
            "errors": self.errors,
            "lost_rows": self.lost_rows,
            "targets": dict(self.targets()),
        }
