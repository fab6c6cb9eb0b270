"""The machine, the report (summary.md, results.json, the console) and the latency plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from player_sessions_local.bench.burst import BurstResult
from player_sessions_local.bench.capacity import CapacityResult
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.latency import RouteLatency, RouteStatsPair, route_label
from player_sessions_local.bench.live import LiveResult, RouteStats, route_json
from player_sessions_local.bench.options import TARGET_HTTP_RATIO, TARGET_LOADER_RATIO, BenchOptions
from player_sessions_local.bench.privacy import PrivacyResult
from player_sessions_local.bench.read_costs import ReadCosts
from player_sessions_local.bench.throughput import Throughput
from player_sessions_local.bench.verification import MetricCheck, RowCount


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
    seed: RouteStatsPair | None
    """None: not measured (``--single-client-seconds 0``)."""
    live: LiveResult
    bursts: list[BurstResult]
    capacity: CapacityResult | None
    privacy: PrivacyResult | None = None

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
            + sum(burst.errors for burst in self.bursts)
            + sum(r.errors for r in [*self.latencies, *self.single_latencies])
            + (self.privacy.errors if self.privacy is not None else 0)
        )

    @property
    def lost_rows(self) -> int:
        counts = self.bare_counts + self.loader_counts + self.http_counts
        metric_gap = self.metric_check.gap
        live_gap = sum(
            abs(check.expected - check.counted)
            for check in [*self.live.checks, *(c for burst in self.bursts for c in burst.checks)]
        )
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
        if self.seed is not None:
            checks.append(
                (
                    f"a page of {self.seed.rows} starts no slower than the seed's unpaged list (p90)",
                    self.seed.met,
                )
            )
        checks += self.live.targets()
        for burst in self.bursts:
            checks += burst.targets()
        if self.capacity is not None:
            checks += self.capacity.targets()
        if self.privacy is not None:
            checks += self.privacy.targets()
        checks.append(("no error, nothing lost, every count exact", self.clean))
        return checks

    def _live_console(self) -> list[str]:
        v = self.live
        lines = [
            f"{quiet.route}: quiet p90 {quiet.percentile(0.9):.1f} ms, with {v.bulk_sessions:,} sessions "
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
            return [route_json(r, costs) for r in items]

        return {
            "bulk_sessions": v.bulk_sessions,
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

    def markdown(self) -> str:
        from player_sessions_local.bench.markdown import render

        return render(self)

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
                if self.seed is not None
                else "page against the seed's list: not measured (--single-client-seconds 0)"
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
                    "cpu_ms_per_request": r.cpu_ms,
                }
                for r in self.single_latencies
            ],
            "fold": {"seconds": self.metric_check.fold_seconds, "starts": self.metric_check.starts_folded},
            "first_metric_ms": self.metric_check.seconds * 1000,
            "seed_comparison": _seed_json(self.seed),
            "live": self._live_json(),
            "bursts": [burst.as_json() for burst in self.bursts],
            "capacity": self.capacity.as_json() if self.capacity is not None else None,
            "privacy": self.privacy.as_json() if self.privacy is not None else None,
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


def _seed_json(seed: RouteStatsPair | None) -> dict[str, Any] | None:
    if seed is None:
        return None
    return {
        "label": seed.label,
        "rows": seed.rows,
        "reference_rows": seed.reference_rows,
        **{f"ours_p{int(q * 100)}_ms": seed.ours(q) for q in (0.5, 0.9, 0.99)},
        **{f"seed_p{int(q * 100)}_ms": seed.reference(q) for q in (0.5, 0.9, 0.99)},
    }
