"""One benchmark run: its keyspaces, gateways and data set, and each phase as a method (__main__ lists them)."""

from __future__ import annotations

import gc
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from player_sessions.bootstrap import Services, build_services
from player_sessions.clock import SystemClock
from player_sessions.routes import ROLLUP_BUILDER
from player_sessions.settings import Settings, get_settings
from player_sessions_local.bench import burst, capacity, live, privacy, seed_reference, verification
from player_sessions_local.bench.cpu import CpuMeter
from player_sessions_local.bench.dataset import ExpectedRows, Statement, expected_rows, read_events
from player_sessions_local.bench.environments import Environments, start_environments, warm_up
from player_sessions_local.bench.latency import RouteLatency, RouteStatsPair, measure_latency, route_plans
from player_sessions_local.bench.local_stack import (
    drop_keyspace,
    flush_redis,
    fresh_keyspace,
    redis_url_with_db,
    wait_for_quiet_node,
)
from player_sessions_local.bench.machine import git_commit, load_average, machine_description
from player_sessions_local.bench.options import BATCH_EVENTS, BenchOptions, say
from player_sessions_local.bench.report import Summary
from player_sessions_local.bench.tables import plot_latency
from player_sessions_local.bench.throughput import Throughput, run_bare_loop, run_http_ingest
from player_sessions_local.bench.verification import MetricCheck, RowCount, check_metric, count_rows
from player_sessions_local.builder_process import BuilderProcess
from player_sessions_local.cassandra_roles import as_admin, as_function
from player_sessions_local.cost.runs import BUILDER_WORK_LOG, PROFILE_NAME, cost_section, write_profile
from player_sessions_local.event_files import open_for_writing
from player_sessions_local.generate import generate_events
from player_sessions_local.load import CHUNK_EVENTS, load_file
from player_sessions_local.rollup_runner import fold_until_caught_up


@dataclass
class BenchRun:
    options: BenchOptions
    loaded: Settings
    bare_settings: Settings
    http_settings: Settings
    environments: dict[str, Environments]
    machine: dict[str, str]
    started_at: datetime
    load_before: str
    rng: random.Random
    commit: str
    """What the run measures: the checkout's commit when it started."""
    data_path: Path = Path()
    generation_seconds: float = 0.0
    expected: ExpectedRows = field(default_factory=ExpectedRows)
    statements: list[Statement] = field(default_factory=list)
    row_statements: int = 0
    quiet_waits: list[float] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    """What each phase measured, by the name of the Summary field it fills, as the phases run."""
    builders: list[BuilderProcess] = field(default_factory=list)
    services: Services | None = None
    """The loaders' (administrative role)."""
    builder_services: Services | None = None
    """The rollup builder's (its own role)."""
    live_truth: live.StartTruth = field(default_factory=set)
    """Every start stored, as the live scenario and the bursts extend it: what their exact counts count."""

    @classmethod
    def prepare(cls, options: BenchOptions) -> BenchRun:
        """Keyspaces of its own (emptied), a Redis database of its own, and the gateways, started now and
        listening before anything is measured, so that no process starts while a phase runs."""
        options.out.mkdir(parents=True, exist_ok=True)
        # The loaders and the set-up act as the administrator; the gateways' functions and the builder as
        # their own roles.
        base = as_admin(get_settings())
        redis_url = redis_url_with_db(base.redis_url, options.redis_db)
        loaded = base.model_copy(
            update={
                "keyspace": options.keyspace,
                "redis_url": redis_url,
                "cache_enabled": True,
                "api_key": None,
                "retention_days": options.retention_days or base.retention_days,
            }
        )
        bare = loaded.model_copy(update={"keyspace": f"{options.keyspace}_bare"})
        http = loaded.model_copy(update={"keyspace": f"{options.keyspace}_http"})
        load_before = load_average()
        machine = machine_description(loaded)
        say(
            f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory']}, Cassandra "
            f"{machine['cassandra']}; load average {load_before}"
        )
        for settings in (loaded, bare, http):
            fresh_keyspace(settings)
        flush_redis(redis_url)
        environments = {
            "http": start_environments("http-ingest", http, options.http_clients, options.out),
            "uncached": start_environments(
                "uncached", loaded.model_copy(update={"cache_enabled": False}), options.clients, options.out
            ),
            "cached": start_environments("cached", loaded, options.clients, options.out),
        }
        return cls(
            options,
            loaded,
            bare,
            http,
            environments,
            machine,
            datetime.now(UTC),
            load_before,
            random.Random(options.seed),
            git_commit(),
        )

    def generate_data_set(self) -> None:
        o = self.options
        self.data_path = o.out / "events.jsonl.gz"
        say(f"generating {o.events:,} events (seed {o.seed}, {o.days} days) into {self.data_path}")
        started = time.perf_counter()
        end = datetime.now(UTC).replace(microsecond=0)
        with open_for_writing(self.data_path) as file:
            for event in generate_events(o.events, o.seed, end, o.days):
                file.write(json.dumps(event) + "\n")
        self.generation_seconds = time.perf_counter() - started
        self.expected = expected_rows(
            read_events(self.data_path), datetime.now(UTC), self.loaded, self.statements
        )
        self.row_statements = len(self.statements)
        e = self.expected
        say(
            f"{e.lines:,} events: {len(e.starts):,} starts, {len(e.ends):,} ends, {e.completed_count:,} completed "
            f"sessions, {len(e.completed):,} players with one; the ingest path writes {self.row_statements:,} rows"
        )

    def measure_bare_loop(self) -> None:
        say(
            f"physical limit: bare loop of {self.row_statements:,} prepared inserts, {self.options.processes} "
            "processes"
        )
        self.quiet_waits.append(wait_for_quiet_node(self.loaded))
        with CpuMeter() as meter:
            bare = run_bare_loop(
                self.bare_settings, self.statements, self.expected.lines, self.options.processes
            )
            bare.cpu = meter.stop()
        self.statements = []
        gc.collect()
        say(f"  {bare.events_per_second:,.0f} events/s ({bare.seconds:.1f} s), {bare.errors} errors")
        self.results["bare"] = bare
        self.results["bare_counts"] = count_rows(self.bare_settings, self.expected, self.rng)
        drop_keyspace(self.bare_settings)

    def measure_loader(self) -> None:
        o = self.options
        self.quiet_waits.append(wait_for_quiet_node(self.loaded))
        say(f"loader: load_file with {o.processes} processes, {o.chunks_in_flight} chunks in flight each")
        self.services = build_services(self.loaded, SystemClock())
        self.builder_services = build_services(as_function(ROLLUP_BUILDER, self.loaded), SystemClock())
        with CpuMeter() as meter:
            report = load_file(
                self.data_path,
                self.services,
                rebase_to_now=False,
                rejects_path=o.out / "load-rejects.jsonl",
                processes=o.processes,
                chunks_in_flight=o.chunks_in_flight,
                progress=not o.quick,
            )
            cpu = meter.stop()
        loader = Throughput(
            f"loader (load_file, {o.processes} processes)",
            report.lines,
            report.seconds,
            report.discarded + report.rejected,
            report.retries,
            f"{report.stored:,} stored, {report.discarded} discarded, {report.rejected} rejected, "
            f"chunks of {CHUNK_EVENTS}, {o.chunks_in_flight} in flight per process",
            cpu,
        )
        say(f"  {loader.events_per_second:,.0f} events/s ({loader.seconds:.1f} s), {loader.detail}")
        self.results["loader"] = loader
        self.results["loader_counts"] = count_rows(self.loaded, self.expected, self.rng)

    def measure_http_ingest(self) -> None:
        o = self.options
        self.quiet_waits.append(wait_for_quiet_node(self.loaded))
        events = list(read_events(self.data_path, o.http_events))
        expected = expected_rows(events, datetime.now(UTC), self.http_settings)
        say(
            f"HTTP ingest: the first {len(events):,} events, {o.http_clients} clients, batches of {BATCH_EVENTS}"
        )
        warm_up(self.environments["http"])
        pids = self.environments["http"].pids()
        with CpuMeter(lambda: pids) as meter:
            http = run_http_ingest(self.environments["http"], events, o.http_clients)
            http.cpu = meter.stop()
        self.environments.pop("http").stop()
        say(f"  {http.events_per_second:,.0f} events/s ({http.seconds:.1f} s), {http.errors} errors")
        self.results["http"] = http
        self.results["http_counts"] = count_rows(self.http_settings, expected, self.rng)
        drop_keyspace(self.http_settings)

    def fold_the_load(self) -> None:
        """As the scheduled builder after a bulk load: fold every arrival (timed), then keep folding, as deployed."""
        assert self.builder_services is not None
        self.quiet_waits.append(wait_for_quiet_node(self.loaded))
        say("builder: folding the load's arrivals into the rollups")
        started = time.perf_counter()
        total = fold_until_caught_up(self.builder_services)
        fold_seconds = time.perf_counter() - started
        say(
            f"  {total.starts_counted:,} starts folded in {fold_seconds:.1f} s "
            f"({total.starts_counted / fold_seconds if fold_seconds else 0:,.0f} starts/s), "
            f"{total.deltas_written:,} deltas, {total.bases_written:,} bases"
        )
        builder_settings = self.builder_services.settings
        # In a process of their own, as deployed: the clients timed here never wait on the builders' GIL.
        self.builders = [
            BuilderProcess.start(
                builder_settings, work_log=self.options.out / BUILDER_WORK_LOG, report_work=True
            )
        ]
        warm_up(self.environments["uncached"])
        check = check_metric(
            self.environments["uncached"].url_for(0), self.expected, fold_seconds, total.starts_counted
        )
        say(
            f"  first metric request over 8760 h: {check.seconds * 1000:,.0f} ms; total {check.total:,} "
            f"(file: {check.expected_total:,})"
        )
        self.results["metric_check"] = check

    def measure_read_latency(self) -> None:
        o = self.options
        say(f"latency: {o.clients} clients, {o.seconds:g} s per route")
        warm_up(self.environments["cached"])
        plans = route_plans(self.environments["cached"], self.environments["uncached"], self.expected)
        reads = [plan for plan in plans if plan.kind != "ingest"]
        self.results["latencies"] = measure_latency(reads, o.clients, o.seconds, o.seed)
        self.results["single_latencies"] = []
        if o.single_seconds > 0:
            say(f"  one client at a time, {o.single_seconds:g} s per route")
            self.results["single_latencies"] = measure_latency(reads, 1, o.single_seconds, o.seed + 7)

    def compare_with_seed_list(self) -> None:
        """A page of up to 1,000 starts against the seed's unpaged list of the same starts, one client each,
        for four times the one-client passes' time (none with ``--single-client-seconds 0``)."""
        seconds, url = self.options.single_seconds * 4, self.environments["uncached"].url_for(0)
        compared = (
            seed_reference.compare(self.loaded, self.expected, url, seconds=seconds) if seconds > 0 else None
        )
        self.results["seed"] = compared

    def run_live_scenario(self) -> None:
        o = self.options
        assert self.services is not None and self.builder_services is not None
        cached = self.environments["cached"]
        self.live_truth = truth = {(str(sid), ts, c) for sid, (_, c, ts) in self.expected.starts.items()}
        ends, url = {str(sid): ts for sid, ts in self.expected.ends.items()}, cached.url_for(0)
        self.results["live"] = live.run_live_scenario(
            cached,
            cached.gateways[0].log_path,
            self.services,
            truth,
            self.expected.starts_by_country,
            ends=ends,
            exact=lambda label: verification.live_checks(url, truth, ends, label),
            bulk=o.live_bulk,
            rate=o.live_rate,
            seconds=o.live_seconds,
            quiet_seconds=o.single_seconds * 2,
            out=o.out,
            seed=o.seed + 3,
            wait_for_builder=live.wait_until_folded(self.builder_services),
        )

    def run_sustained_bursts(self) -> None:
        """After the live scenario: extends its truth (every start acknowledged), compares with its quiet reads."""
        o = self.options
        assert self.services is not None
        assert self.builder_services is not None
        self.results["bursts"] = []
        if o.burst_seconds <= 0:
            return
        cached = self.environments["cached"]
        for number, rate in enumerate(burst.RATES):
            self.results["bursts"].append(
                burst.run_burst(
                    cached.url_for(0),
                    cached.gateways[0].log_path,
                    self.services,
                    self.live_truth,
                    self.expected.starts_by_country,
                    quiet=self.results["live"].quiet,
                    rate=rate,
                    seconds=o.burst_seconds,
                    seed=o.seed + 50 + number,
                    wait_for_builder=live.wait_until_folded(self.builder_services),
                    gateway_pid=cached.gateways[0].process.pid,
                    builder_pids=[builder.process.pid for builder in self.builders],
                )
            )

    def measure_ingest_latency(self) -> None:
        """Last: its fresh sessions are not in the truth the live scenario checks counts against."""
        o = self.options
        plans = [
            plan
            for plan in route_plans(self.environments["cached"], self.environments["uncached"], self.expected)
            if plan.kind == "ingest"
        ]
        self.results["latencies"] = [
            *self.results["latencies"],
            *measure_latency(plans, o.clients, o.seconds, o.seed + 100),
        ]
        if o.single_seconds > 0:
            self.results["single_latencies"] = [
                *self.results["single_latencies"],
                *measure_latency(plans, 1, o.single_seconds, o.seed + 107),
            ]

    def measure_capacity(self) -> None:
        """Last of all: its ingest adds sessions no count is checked against."""
        o = self.options
        self.results["capacity"] = None
        if o.capacity_seconds <= 0:
            return
        assert self.builder_services is not None
        cached, settle = self.environments["cached"], live.wait_until_folded(self.builder_services)
        plans = route_plans(cached, self.environments["uncached"], self.expected)
        self.results["capacity"] = capacity.measure_capacity(cached.url_for(0), plans, o, settle=settle)

    def measure_privacy(self) -> None:
        """After everything else: the players it erases are gone from every later check."""
        url = self.environments["cached"].url_for(0)
        self.results["privacy"] = privacy.run_phase(self.options, url, self.services, self.expected.completed)

    def stop(self) -> None:
        for builder in self.builders:
            builder.stop()
        for group in self.environments.values():
            group.stop()
        for services in (self.services, self.builder_services):
            if services is not None and services.cassandra is not None:
                services.cassandra.close()

    def report(self) -> int:
        r, o = self.results, self.options
        summary = Summary(
            options=o,
            machine=self.machine,
            started_at=self.started_at,
            load_before=self.load_before,
            load_after=load_average(),
            generation_seconds=self.generation_seconds,
            expected=self.expected,
            row_statements=self.row_statements,
            quiet_waits=self.quiet_waits,
            **r,
        )
        plot_latency(
            summary.latencies,
            o.out / "latency.png",
            f"{self.expected.lines:,} events loaded; {o.clients} clients, {o.seconds:g} s per route; "
            f"{self.machine['cpus']} CPUs; {self.started_at:%Y-%m-%d %H:%M} UTC",
        )
        # What it would cost deployed: the run's own logs, priced (python -m player_sessions_local.cost).
        for builder in self.builders:
            builder.stop()
        cost = cost_section(o.out)
        write_profile(
            o.out,
            {
                "id": o.out.name,
                "date": f"{self.started_at:%Y-%m-%d %H:%M} UTC",
                "events": f"{self.expected.lines:,}",
                "commit": self.commit,
            },
        )
        markdown = summary.markdown() + "\n## Cost per request and per month\n\n" + "\n".join(cost) + "\n"
        (o.out / "summary.md").write_text(markdown)
        (o.out / "results.json").write_text(json.dumps(summary.as_json(), indent=2))
        print(summary.console())
        print("\n".join(cost))
        print(
            f"\nwritten: {o.out / 'summary.md'}, {o.out / 'latency.png'}, {o.out / 'results.json'}, "
            f"{o.out / PROFILE_NAME} (copy it to docs/ after a full run: the cost command's default)"
        )
        return 0 if summary.clean else 1


__all__ = ["BenchRun", "MetricCheck", "RouteLatency", "RouteStatsPair", "RowCount", "Throughput"]
