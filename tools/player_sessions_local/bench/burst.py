"""The sustained burst: starts POSTed at a steady rate (100/s; 278/s, a million an hour; and the most the HTTP
path takes, several clients posting back to back), each stamped within the last two minutes, while one reader
polls the 1 h and 24 h metric and a country's page, and the builders' lag is sampled.

Per rate: the reader's p90 during the burst against its quiet p90 (the live scenario's), the builders' lag (the
age of the oldest start they have not folded: p50, p99, max) and the span of slots a reader's tail reads
(``LagSample``), the rows each read took (from the gateway's log), and the counts checked exactly once ingest
stops and the builders catch up.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from player_sessions.bootstrap import Services
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import Partition, slot_of, slot_start
from player_sessions_local.bench.live import (
    ExactCheck,
    RouteStats,
    StartTruth,
    check_counts,
    live_ingest,
    p90_ratio,
    poll,
    reads,
    route_json,
    stats_between,
)
from player_sessions_local.bench.options import say
from player_sessions_local.bench.read_costs import ReadCosts, read_costs
from player_sessions_local.cpu_profile import CpuMeter, CpuProfile
from player_sessions_local.measure.stats import Latencies

RATES: tuple[float | None, ...] = (100.0, 278.0, None)
"""Starts per second; None: as fast as MAX_RATE_CLIENTS clients post, back to back."""
MAX_RATE_CLIENTS = 3
"""Clients posting at every rate (paced, or back to back for the maximum): with the reader, the cached gateway's
four environments, none of them throttled."""
LAG_SAMPLE_SECONDS = 0.5
TARGET_RATIO = 1.5
TARGET_P90_MS = 50.0
TARGET_LAG_P99_SECONDS = 5.0


@dataclass
class BurstResult:
    target_rate: float | None
    achieved_rate: float
    seconds: float
    ingest_errors: int
    readers: list[RouteStats]
    quiet: list[RouteStats]
    costs: ReadCosts
    lag_seconds: Latencies
    """Samples of ``LagSample.unfolded``, in seconds (stored in the milliseconds field's place)."""
    tail_span_seconds: Latencies = field(default_factory=Latencies)
    """Samples of ``LagSample.span``, in seconds, likewise."""
    lag_worst: list[tuple[float, datetime, float]] = field(default_factory=list)
    """The largest ``lag_seconds`` samples: seconds into the burst, the moment, the lag."""
    checks: list[ExactCheck] = field(default_factory=list)
    starts_stored: int = 0
    cpu: CpuProfile | None = None
    """Where the CPU went while the starts were posted, by component (the rollup builders' process among them)."""

    def cpu_ms_per_start(self) -> dict[str, float]:
        return self.cpu.per_request_ms(self.starts_stored) if self.cpu else {}

    @property
    def label(self) -> str:
        return (
            f"{self.target_rate:g} starts/s"
            if self.target_rate
            else f"HTTP maximum ({MAX_RATE_CLIENTS} clients)"
        )

    def ratio(self, route: str) -> float:
        return p90_ratio(self.quiet, self.readers, route)

    def targets(self) -> list[tuple[str, bool]]:
        checks = []
        for stats in self.readers:
            p90 = stats.percentile(0.9)
            checks.append(
                (
                    f"{stats.route} during {self.label}: p90 <= {TARGET_RATIO}x quiet and <= {TARGET_P90_MS:g} ms",
                    stats.errors == 0 and p90 <= TARGET_P90_MS and self.ratio(stats.route) <= TARGET_RATIO,
                )
            )
        checks.append(
            (
                f"builder lag p99 <= {TARGET_LAG_P99_SECONDS:g} s during {self.label}",
                self.lag_seconds.percentile(0.99) <= TARGET_LAG_P99_SECONDS,
            )
        )
        checks.append((f"counts exact after {self.label}", all(check.exact for check in self.checks)))
        return checks

    @property
    def errors(self) -> int:
        return self.ingest_errors + sum(r.errors for r in self.readers)

    def as_json(self) -> dict[str, Any]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": self.achieved_rate,
            "seconds": self.seconds,
            "ingest_errors": self.ingest_errors,
            "readers": [
                {
                    **route_json(r, self.costs),
                    "quiet_p90_ms": {q.route: q for q in self.quiet}[r.route].percentile(0.9),
                }
                for r in self.readers
            ],
            "lag_seconds": _seconds_json(self.lag_seconds),
            "tail_span_seconds": _seconds_json(self.tail_span_seconds),
            "lag_worst": [
                {"seconds_into_burst": round(into, 1), "at": at.isoformat(), "lag_seconds": lag}
                for into, at, lag in self.lag_worst
            ],
            "checks": [asdict(c) for c in self.checks],
            "cpu_ms_per_start": self.cpu_ms_per_start(),
            "cores_busy": self.cpu.cores_busy() if self.cpu else None,
        }


def _seconds_json(samples: Latencies) -> dict[str, float]:
    return {
        "p50": samples.percentile(0.5),
        "p99": samples.percentile(0.99),
        "max": max(samples.latencies_ms, default=0.0),
    }


@dataclass(frozen=True)
class LagSample:
    unfolded: float
    """The builders' lag: seconds since the start of the oldest slot that holds an arrival its part has not
    folded yet (after the part's watermark), 0 when none does. The starts a reader counts itself are at most
    this old."""
    span: float
    """Seconds since the end of the oldest part's watermark slot: the slots a reader's tail reads, empty ones
    included. Longer than ``unfolded`` while a part is idle: it moves its watermark over empty slots only every
    IDLE_PROGRESS_SLOTS (domain.country_starts.builder), so a burst that follows a quiet spell begins with
    watermarks up to that many seconds old and nothing behind them to fold."""


def lag_sample(store: StartsStore, partition: Partition, now: datetime) -> LagSample | None:
    """The lag at ``now`` (None until every part has a watermark): per part, one row at most per request
    (``read_arrivals_within`` with no room) finds its oldest slot with an unfolded arrival."""
    watermarks = store.read_progress(partition.all_parts)
    if len(watermarks) < len(partition.all_parts):
        return None
    newest = slot_of(now)
    waiting = [
        slot
        for part, watermark in watermarks.items()
        if (
            slot := store.read_arrivals_within(
                range(watermark + 1, newest + 1), partition.shards_of(part), 0
            )[1]
        )
        is not None
    ]
    return LagSample(
        unfolded=(now - slot_start(min(waiting))).total_seconds() if waiting else 0.0,
        span=(now - slot_start(min(watermarks.values()) + 1)).total_seconds(),
    )


def sample_lag(services: Services, stop: threading.Event) -> list[tuple[datetime, LagSample]]:
    """Every LAG_SAMPLE_SECONDS until ``stop``, a ``LagSample``, with when it was taken."""
    samples = []
    while not stop.wait(LAG_SAMPLE_SECONDS):
        now = datetime.now(UTC)
        sample = lag_sample(services.starts, services.settings.partition, now)
        if sample is not None:
            samples.append((now, sample))
    return samples


WORST_LAG_SAMPLES = 3
"""How many of a burst's largest lag samples it reports with their moments (the p99 of a minute's samples is its
second largest): whether they came at the burst's start, or together at one moment, as the builders' runs hand
over each minute."""


def run_burst(
    url: str,
    log_path: Path,
    services: Services,
    truth: StartTruth,
    countries: Counter[str],
    *,
    quiet: Sequence[RouteStats],
    rate: float | None,
    seconds: float,
    seed: int,
    wait_for_builder: Callable[[], float],
    gateway_pid: int | None = None,
    builder_pids: Sequence[int] = (),
) -> BurstResult:
    """``gateway_pid``: measure where the CPU goes meanwhile (cpu_profile), the builders' processes apart."""
    biggest = countries.most_common(1)[0][0]
    paths = reads(biggest)
    label = f"{rate:g} starts/s" if rate else f"as fast as {MAX_RATE_CLIENTS} clients post"
    say(
        f"burst: {label} through POST /events for {seconds:g} s, one reader polling, the builders' lag sampled"
    )
    offset = log_path.stat().st_size
    stop, lag_stop = threading.Event(), threading.Event()
    outcomes: list[tuple[int, int, float]] = []
    # Three clients at every rate: one client's batches take tens of milliseconds, so alone it paces no more
    # than about 150 starts/s.
    clients = MAX_RATE_CLIENTS
    per_client = rate / clients if rate else 1e9

    def ingest(number: int) -> None:
        outcome = live_ingest(
            url,
            per_client,
            seconds,
            countries,
            rng=random.Random(seed * 100 + number),
            truth=truth,
            stop=stop,
        )
        outcomes.append(outcome)

    lag_holder: list[list[tuple[datetime, LagSample]]] = []
    sampler = threading.Thread(target=lambda: lag_holder.append(sample_lag(services, lag_stop)))
    writers = [threading.Thread(target=ingest, args=(n,)) for n in range(clients)]
    cpu = CpuMeter(gateway_pid, {"builders": builder_pids}) if gateway_pid is not None else None
    began = datetime.now(UTC)
    sampler.start()
    if cpu is not None:
        cpu.start()
    for writer in writers:
        writer.start()
    samples = poll(url, paths, seconds)
    stop.set()
    for writer in writers:
        writer.join()
    spent = cpu.stop() if cpu is not None else None
    lag_stop.set()
    sampler.join()
    costs, _ = read_costs(log_path, offset)
    lags = lag_holder[0] if lag_holder else []
    stored = sum(stored for stored, _, _ in outcomes)
    took = max((took for _, _, took in outcomes), default=seconds)
    result = BurstResult(
        target_rate=rate,
        achieved_rate=stored / took if took else 0.0,
        seconds=seconds,
        ingest_errors=sum(errors for _, errors, _ in outcomes),
        readers=stats_between(samples, paths, 0, seconds),
        quiet=list(quiet),
        costs=costs,
        lag_seconds=Latencies([sample.unfolded for _, sample in lags]),
        tail_span_seconds=Latencies([sample.span for _, sample in lags]),
        lag_worst=[
            ((at - began).total_seconds(), at, sample.unfolded)
            for at, sample in sorted(lags, key=lambda taken: -taken[1].unfolded)[:WORST_LAG_SAMPLES]
        ],
        starts_stored=stored,
        cpu=spent,
    )
    wait_for_builder()
    result.checks = check_counts(url, truth, f"after {label}")
    p90s = ", ".join(f"{r.route} {r.percentile(0.9):.1f} ms" for r in result.readers)
    say(
        f"  {result.achieved_rate:,.0f} starts/s stored; reader p90: {p90s}; lag p99 "
        f"{result.lag_seconds.percentile(0.99):.1f} s; counts {'exact' if all(c.exact for c in result.checks) else 'DIFFER'}"
    )
    return result


def burst_section(bursts: Sequence[BurstResult]) -> list[str]:
    if not bursts:
        return []
    lines = [
        "## Sustained burst",
        "",
        (
            f"Starts POSTed for {bursts[0].seconds:g} s at each rate (stamped up to two minutes back), one reader "
            "polling every 0.25 s meanwhile; quiet p90 from the live scenario's quiet reads. Lag, sampled every "
            "0.5 s: the age of the oldest start the builders have not folded; tail span: how far back the oldest "
            "part's watermark ends (the slots a reader's tail reads, empty ones included: an idle part moves its "
            "watermark every ten slots). Rows: Cassandra rows per request (p50 / max)."
        ),
        "",
        "| rate | achieved starts/s | route | requests | p50 ms | p90 ms | p99 ms | quiet p90 | ratio | rows |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    from player_sessions_local.bench.tables import rows_cell

    for burst in bursts:
        quiet = {q.route: q for q in burst.quiet}
        for r in burst.readers:
            lines.append(
                f"| {burst.label} | {burst.achieved_rate:,.0f} | `{r.route}` | {len(r.latencies_ms)} | "
                f"{r.percentile(0.5):.1f} | {r.percentile(0.9):.1f} | {r.percentile(0.99):.1f} | "
                f"{quiet[r.route].percentile(0.9):.1f} | {burst.ratio(r.route):.2f} | "
                f"{rows_cell(burst.costs.rows(r.route))} |"
            )
    lines += [
        "",
        (
            "| rate | lag p50 s | lag p99 s | lag max s | largest lags (s into the burst) "
            "| tail span p99 / max s | ingest errors | counts |"
        ),
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for burst in bursts:
        lag, span = _seconds_json(burst.lag_seconds), _seconds_json(burst.tail_span_seconds)
        exact = all(c.exact for c in burst.checks)
        lines.append(
            f"| {burst.label} | {lag['p50']:.1f} | {lag['p99']:.1f} | {lag['max']:.1f} | "
            f"{', '.join(f'{lag_s:.1f} ({into:.0f})' for into, _, lag_s in burst.lag_worst)} | "
            f"{span['p99']:.1f} / {span['max']:.1f} | {burst.ingest_errors} | "
            f"{'exact' if exact else '**differ**'} ({', '.join(f'{c.counted:,}' for c in burst.checks)}) |"
        )
    return [*lines, "", *_cpu_lines(bursts)]


def _cpu_lines(bursts: Sequence[BurstResult]) -> list[str]:
    """CPU milliseconds per start stored while each rate ran, by component, and the cores the machine had busy:
    what the burst's own work leaves to a reader."""
    measured = [burst for burst in bursts if burst.cpu is not None]
    if not measured:
        return []
    components = list(measured[0].cpu_ms_per_start())
    cores = os.cpu_count() or 1
    lines = [
        (
            "CPU milliseconds per start stored while each rate ran (ingest through the gateway, its execution "
            "environments, Cassandra and Redis, the rollup builders' process folding, this process posting and "
            f"reading), and the cores busy out of the machine's {cores}: what the burst's own work leaves to a "
            "reader."
        ),
        "",
        "| rate | " + " | ".join(components) + " | total | cores busy |",
        "|---|" + "---:|" * (len(components) + 2),
    ]
    for burst in measured:
        per_start = burst.cpu_ms_per_start()
        assert burst.cpu is not None
        lines.append(
            f"| {burst.label} | "
            + " | ".join(f"{per_start[name]:.2f}" for name in components)
            + f" | {sum(per_start.values()):.2f} | {burst.cpu.cores_busy():.2f} of {cores} |"
        )
    return [*lines, ""]
