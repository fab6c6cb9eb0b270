"""The live scenario: what a live game's traffic does to the reads.

1. quiet: one client asks the 1 h and 24 h metric, a page of the biggest country and the live-ops routes;
2. loaded: 100,000 sessions started within the last ten minutes, nine in ten of them ended too, are stored (the
   loader's path) and folded by the builders; the same reads again, and the counts checked exactly;
3. live: POST /events at a fixed rate (starts stamped up to two minutes late) while one reader polls them all,
   per third of the run (first, last), with rows read and cache hits (gateway's log); counts checked after.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from player_sessions.bootstrap import Services
from player_sessions.routes import STUDIO_EVENTS_PATH
from player_sessions_local.bench.dataset import bulk_sessions
from player_sessions_local.bench.environments import Environments, http_client
from player_sessions_local.bench.options import BATCH_EVENTS, LIVE_OPS_PATHS, say
from player_sessions_local.bench.read_costs import ReadCosts, read_costs
from player_sessions_local.load import load_file
from player_sessions_local.measure.stats import Latencies
from player_sessions_local.rollup_runner import fold_until_caught_up

StartTruth = set[tuple[str, datetime, str]]
"""Every stored start as (session id, ts, country): what an exact count counts."""

BULK_SPAN_SECONDS = 600
LIVE_LATENESS_SECONDS = 120
LIVE_PLAYERS = 10_000  # the posted starts' players, drawn at random: a studio's batch names several
POLL_PAUSE_SECONDS = 0.25
TARGET_LOADED_RATIO = 1.5
TARGET_LOADED_P90_MS = 30.0
TARGET_LIVE_METRIC_P90_MS = 50.0


@dataclass
class RouteStats(Latencies):
    route: str = ""


def p90_ratio(quiet: Sequence[RouteStats], other: Sequence[RouteStats], route: str) -> float:
    """The route's p90 in ``other`` over its quiet p90."""
    base = {r.route: r for r in quiet}[route].percentile(0.9)
    return {r.route: r for r in other}[route].percentile(0.9) / base if base else float("nan")


def route_json(stats: RouteStats, costs: ReadCosts) -> dict[str, Any]:
    """A route's requests, errors, percentiles and rows read, as results.json holds them."""
    return {
        "route": stats.route,
        "requests": len(stats.latencies_ms),
        "errors": stats.errors,
        "p50_ms": stats.percentile(0.5),
        "p90_ms": stats.percentile(0.9),
        "p99_ms": stats.percentile(0.99),
        "rows_read": costs.rows(stats.route),
        "cache_hit_ratio": costs.hit_ratio(stats.route),
    }


@dataclass
class ExactCheck:
    label: str
    expected: int
    counted: int

    @property
    def exact(self) -> bool:
        return self.expected == self.counted


@dataclass
class LiveResult:
    quiet: list[RouteStats]
    loaded: list[RouteStats]
    bulk_sessions: int
    bulk_seconds: float
    fold_seconds: float
    live_first: list[RouteStats]
    live_last: list[RouteStats]
    live_costs_first: ReadCosts
    live_costs_last: ReadCosts
    loaded_costs: ReadCosts
    quiet_costs: ReadCosts
    ingest_rate: float
    ingest_target: float
    ingest_errors: int
    live_seconds: float
    checks: list[ExactCheck]

    def ratio(self, route: str) -> float:
        return p90_ratio(self.quiet, self.loaded, route)

    def targets(self) -> list[tuple[str, bool]]:
        checks = []
        for stats in self.loaded:
            checks.append(
                (
                    (
                        f"{stats.route} with {self.bulk_sessions:,} sessions just stored: p90 <= "
                        f"{TARGET_LOADED_RATIO}x its quiet p90"
                    ),
                    self.ratio(stats.route) <= TARGET_LOADED_RATIO,
                )
            )
            checks.append(
                (
                    (
                        f"{stats.route} with {self.bulk_sessions:,} sessions just stored: p90 <= "
                        f"{TARGET_LOADED_P90_MS:g} ms"
                    ),
                    stats.percentile(0.9) <= TARGET_LOADED_P90_MS,
                )
            )
        for stats in self.live_first + self.live_last:
            if "/countries/{country}" not in stats.route:
                checks.append(
                    (
                        (
                            f"{stats.route} while {self.ingest_target:g} starts/s arrive: p90 <= "
                            f"{TARGET_LIVE_METRIC_P90_MS:g} ms"
                        ),
                        stats.percentile(0.9) <= TARGET_LIVE_METRIC_P90_MS,
                    )
                )
        checks.append(("live counts exact", all(check.exact for check in self.checks)))
        return checks

    @property
    def errors(self) -> int:
        return self.ingest_errors + sum(
            r.errors for r in self.quiet + self.loaded + self.live_first + self.live_last
        )


def reads(country: str) -> list[tuple[str, str]]:
    """(label, path) of the reads a dashboard makes; the labels are those of the gateway's log lines."""
    return [
        ("GET /countries/starts?hours=1", "/countries/starts?hours=1"),
        ("GET /countries/starts?hours=24", "/countries/starts?hours=24"),
        ("GET /countries/{country}/starts?hours=24", f"/countries/{country}/starts?hours=24&limit=100"),
        *((f"GET {path}", path) for path in LIVE_OPS_PATHS),
    ]


def time_reads(url: str, paths: Sequence[tuple[str, str]], seconds: float) -> list[RouteStats]:
    """One client, each route back to back for ``seconds`` (after a few untimed requests)."""
    results = []
    with http_client(url) as client:
        for route, path in paths:
            stats = RouteStats(route=route)
            for _ in range(3):
                client.request("GET", path)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status, _ = client.request("GET", path)
                if status == 200:
                    stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    stats.errors += 1
            results.append(stats)
    return results


def instant(text: str) -> datetime:
    """An answer's RFC 3339 timestamp (``Z`` for UTC) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_counts(url: str, truth: StartTruth, label: str) -> list[ExactCheck]:
    checks = []
    with http_client(url) as client:
        for hours in (1, 24):
            body = client.get_json(f"/countries/starts?hours={hours}")
            since, until = (instant(body[key]) for key in ("from", "to"))
            expected = sum(1 for _, ts, _ in truth if since <= ts <= until)
            checks.append(ExactCheck(f"{label}: total over {hours} h", expected, body["total"]))
    return checks


def live_ingest(
    url: str,
    rate: float,
    seconds: float,
    countries: Counter[str],
    *,
    rng: random.Random,
    truth: StartTruth,
    stop: threading.Event,
) -> tuple[int, int, float]:
    """POSTs 10-start batches at ``rate`` starts/s for ``seconds``; each acknowledged start joins ``truth``.
    Returns (starts stored, errors, seconds taken)."""
    names, weights = list(countries), list(countries.values())
    interval = BATCH_EVENTS / rate
    stored = errors = 0
    started = time.monotonic()
    with http_client(url) as client:
        batch_number = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            due = started + batch_number * interval
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            now = datetime.now(UTC)
            starts = [
                (
                    str(uuid.uuid4()),  # new on every run (measure.batches)
                    (now - timedelta(seconds=rng.uniform(0, LIVE_LATENESS_SECONDS))).replace(
                        microsecond=rng.randrange(1000) * 1000
                    ),
                    rng.choices(names, weights)[0],
                )
                for _ in range(BATCH_EVENTS)
            ]
            body = json.dumps(
                [
                    {
                        "event": "start",
                        "player_id": f"live-{rng.randrange(LIVE_PLAYERS)}",
                        "session_id": sid,
                        "ts": ts.isoformat(),
                        "country": country,
                    }
                    for sid, ts, country in starts
                ]
            ).encode()
            status, answer = client.request("POST", STUDIO_EVENTS_PATH, body)
            if status == 200 and json.loads(answer).get("stored") == BATCH_EVENTS:
                truth.update(starts)
                stored += BATCH_EVENTS
            else:
                errors += 1
            batch_number += 1
    return stored, errors, time.monotonic() - started


def poll(url: str, paths: Sequence[tuple[str, str]], seconds: float) -> list[tuple[float, str, float, bool]]:
    """One reader polling the routes in turn, a pause between requests: (when, route, ms, ok) for each."""
    samples = []
    started = time.monotonic()
    with http_client(url) as client:
        number = 0
        while time.monotonic() - started < seconds:
            route, path = paths[number % len(paths)]
            began = time.perf_counter()
            status, _ = client.request("GET", path)
            samples.append(
                (time.monotonic() - started, route, (time.perf_counter() - began) * 1000, status == 200)
            )
            number += 1
            time.sleep(POLL_PAUSE_SECONDS)
    return samples


def stats_between(
    samples: Sequence[tuple[float, str, float, bool]],
    paths: Sequence[tuple[str, str]],
    first: float,
    last: float,
) -> list[RouteStats]:
    by_route = {route: RouteStats(route=route) for route, _ in paths}
    for when, route, ms, ok in samples:
        if first <= when < last:
            if ok:
                by_route[route].latencies_ms.append(ms)
            else:
                by_route[route].errors += 1
    return list(by_route.values())


def run_live_scenario(
    environments: Environments,
    log_path: Path,
    services: Services,
    truth: StartTruth,
    countries: Counter[str],
    *,
    ends: dict[str, datetime],
    exact: Callable[[str], list[ExactCheck]],
    bulk: int,
    rate: float,
    seconds: float,
    quiet_seconds: float,
    out: Path,
    seed: int,
    wait_for_builder: Callable[[], float],
) -> LiveResult:
    url = environments.url_for(0)
    biggest = countries.most_common(1)[0][0]
    paths = reads(biggest)
    rng = random.Random(seed)
    offset = log_path.stat().st_size

    say(f"live: quiet reads, one client, {quiet_seconds:g} s per route")
    quiet = time_reads(url, paths, quiet_seconds)
    quiet_costs, offset = read_costs(log_path, offset)

    say(
        f"live: {bulk:,} sessions started within the last {BULK_SPAN_SECONDS // 60} minutes, through the loader"
    )
    bulk_truth, bulk_ends = bulk_sessions(bulk, BULK_SPAN_SECONDS, countries, rng, out / "live-bulk.jsonl.gz")
    say(f"  {len(bulk_ends):,} of them ended")
    report = load_file(
        out / "live-bulk.jsonl.gz",
        services,
        rebase_to_now=False,
        rejects_path=None,
        processes=2,
        progress=False,
    )
    truth |= bulk_truth
    ends.update(bulk_ends)
    fold_seconds = wait_for_builder()
    say(f"  loaded in {report.seconds:.1f} s, folded {fold_seconds:.1f} s later")
    loaded = time_reads(url, paths, quiet_seconds)
    loaded_costs, offset = read_costs(log_path, offset)
    checks = exact(f"after {bulk:,} sessions")

    say(f"live: {rate:g} starts/s through POST /events for {seconds:g} s, one reader polling")
    stop = threading.Event()
    outcome: dict[str, tuple[int, int, float]] = {}
    ingest = threading.Thread(
        target=lambda: outcome.update(
            result=live_ingest(url, rate, seconds, countries, rng=rng, truth=truth, stop=stop)
        )
    )
    ingest.start()
    offset_first = offset
    samples = poll(url, paths, seconds)
    stop.set()
    ingest.join()
    stored, errors, took = outcome["result"]
    costs_all, offset = read_costs(log_path, offset_first)
    third = seconds / 3
    first, last = stats_between(samples, paths, 0, third), stats_between(samples, paths, 2 * third, seconds)
    # The log's lines carry no request time: split each route's lines by order, as the samples are split.
    costs_first, costs_last = costs_all.thirds()
    wait_for_builder()
    checks += exact("after live ingest")
    return LiveResult(
        quiet=quiet,
        loaded=loaded,
        bulk_sessions=bulk,
        bulk_seconds=report.seconds,
        fold_seconds=fold_seconds,
        live_first=first,
        live_last=last,
        live_costs_first=costs_first,
        live_costs_last=costs_last,
        loaded_costs=loaded_costs,
        quiet_costs=quiet_costs,
        ingest_rate=stored / took if took else 0.0,
        ingest_target=rate,
        ingest_errors=errors,
        live_seconds=seconds,
        checks=checks,
    )


def wait_until_folded(services: Services) -> Callable[[], float]:
    """Waits for the bench's builder: folds to the newest settled slot, returns the seconds it took."""

    def wait() -> float:
        started = time.perf_counter()
        time.sleep(3)  # the newest slot settles 1.5 s after it ends
        fold_until_caught_up(services)
        return time.perf_counter() - started

    return wait
