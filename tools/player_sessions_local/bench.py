"""The benchmark: generate and load a data set, then measure every route and each write path against the
physical limit, in one run.

    python -m player_sessions_local.bench [--events 1000000] [--quick] [--out bench-results/DATE]

In order, on the local Cassandra and Redis (`make up`), in keyspaces and a Redis database of its own:

1. generates ``--events`` realistic events (player_sessions_local.generate);
2. the physical limit: a bare loop of concurrent prepared inserts (same driver, same connection settings,
   the loader's number of processes) writing exactly the rows the ingest path writes for those events: session
   halves, session_starts rows, completed_sessions_by_player rows; no validation, no read-back;
3. the loader (load.py's ``load_file``, ``--processes`` worker processes) on the same file;
4. HTTP ingest: ``--http-clients`` clients posting the file's first ``--http-events`` events, 10 a batch,
   through the local gateway, into a third keyspace;
5. counts the rows each path stored against the file (nothing lost, nothing extra), and the country metric's
   total over 8760 hours; that first request builds every rollup and is timed on its own;
6. latency per route: ``--clients`` clients for ``--seconds`` per route through the local gateway, with the
   cache on, and off (every read goes to Cassandra: the "cache cold" case).

It prints p50/p90/p99 per route and the throughput ratios, and writes ``summary.md``, ``latency.png`` and
``results.json`` to ``--out``. Exit status 1 when a request failed or a row is missing. ``--quick`` is a smoke
run of a few thousand events (about a minute).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# The loader's worker processes record Lambda metrics; a benchmark is no Lambda invocation.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from cassandra.concurrent import execute_concurrent  # noqa: E402
from cassandra.query import BatchStatement, BatchType  # noqa: E402

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection, build_cluster  # noqa: E402
from player_sessions.clock import SystemClock  # noqa: E402
from player_sessions.domain.ingest import ttl_seconds  # noqa: E402
from player_sessions.models import EventType, parse_event  # noqa: E402
from player_sessions.repositories.cassandra_store import (  # noqa: E402
    READ_SESSION,
    WRITE_COMPLETED,
    WRITE_CONCURRENCY,
    WRITE_END_HALF,
    WRITE_START_HALF,
    WRITE_START_ROW,
)
from player_sessions.schema import render_drop_keyspace_cql  # noqa: E402
from player_sessions.services import build_services  # noqa: E402
from player_sessions.settings import Settings, get_settings  # noqa: E402
from player_sessions.time_buckets import hour_of, start_shard  # noqa: E402
from player_sessions_local.generate import generate_events, open_for_writing  # noqa: E402
from player_sessions_local.load import (  # noqa: E402
    CHUNK_EVENTS,
    CHUNKS_IN_FLIGHT_PER_PROCESS,
    load_file,
    open_for_reading,
)

TARGET_P90_MS = {"ingest": 25.0, "players": 15.0, "metric": 50.0, "page": 25.0}
TARGET_LOADER_RATIO = 0.70
TARGET_HTTP_RATIO = 0.30
METRIC_HOURS = (1, 24, 168, 8760)
BATCH_EVENTS = 10
API_KEY = "bench-api-key"
BARE_ATTEMPTS = 3
SESSIONS_SAMPLE = 2000
"""Sessions rows read back per keyspace (every start row and every completed row is counted)."""


@dataclass(frozen=True)
class BenchOptions:
    events: int
    out: Path
    seconds: float
    clients: int
    single_seconds: float
    """Per route, one client at a time (the service time without queueing); 0 skips that pass."""
    http_events: int
    http_clients: int
    processes: int
    chunks_in_flight: int
    keyspace: str
    redis_db: int
    seed: int
    days: int
    retention_days: int | None
    """None: the service's setting (365). The quick size keeps 31 days, so its one-off rollup build reads a
    month of hours, not a year of empty ones (an 8760-hour window is clamped to the retention)."""
    quick: bool


# --- What the file should leave in each table ------------------------------------------------------------


@dataclass
class ExpectedRows:
    """The rows the ingest path must store for a sequence of events (all valid and retained here)."""

    lines: int = 0
    starts: dict[uuid.UUID, tuple[str, str, datetime]] = field(default_factory=dict)
    """Each start's player, country and ts: one session_starts row per session."""
    ends: dict[uuid.UUID, datetime] = field(default_factory=dict)
    completed: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    """Per player, the sessions whose start and end are both there (the end not before the start)."""

    @property
    def starts_by_country(self) -> Counter[str]:
        return Counter(country for _, country, _ in self.starts.values())

    @property
    def completed_count(self) -> int:
        return sum(len(sessions) for sessions in self.completed.values())

    def sessions(self) -> set[uuid.UUID]:
        return set(self.starts) | set(self.ends)


Statement = tuple[str, tuple[Any, ...]]


def expected_rows(events: Iterable[dict], now: datetime, settings: Settings,
                  statements: list[Statement] | None = None) -> ExpectedRows:
    """What the events must leave stored; with ``statements``, also appends the writes the ingest path makes
    for them (the bare loop's work), computed with the domain's own parsing and TTL rules."""
    expected = ExpectedRows()
    for raw in events:
        expected.lines += 1
        event = parse_event(raw)
        ttl = ttl_seconds(event.ts, now, settings.retention)
        session_id = event.session_id
        if event.event is EventType.START:
            assert event.country is not None
            expected.starts.setdefault(session_id, (event.player_id, event.country, event.ts))
            if statements is not None:
                statements.append((WRITE_START_HALF, (ttl, event.player_id, event.country, event.ts, session_id)))
                statements.append((WRITE_START_ROW, (hour_of(event.ts), start_shard(session_id, settings.start_shards),
                                                     event.country, event.ts, session_id, event.player_id, ttl)))
        else:
            expected.ends.setdefault(session_id, event.ts)
            if statements is not None:
                statements.append((WRITE_END_HALF, (ttl, event.ts, session_id)))
        start, end_ts = expected.starts.get(session_id), expected.ends.get(session_id)
        if start is not None and end_ts is not None and end_ts >= start[2]:
            player, country, start_ts = start
            completed = expected.completed.setdefault(player, set())
            if session_id not in completed:
                completed.add(session_id)
                if statements is not None:
                    statements.append((WRITE_COMPLETED, (player, end_ts, session_id, start_ts, country,
                                                         ttl_seconds(start_ts, now, settings.retention))))
    return expected


def read_events(path: Path, limit: int | None = None) -> Iterator[dict]:
    with open_for_reading(path) as lines:
        for line in itertools.islice(lines, limit):
            yield json.loads(line)


# --- Keyspaces, Redis, gateways --------------------------------------------------------------------------


def fresh_keyspace(settings: Settings) -> None:
    from player_sessions_local.schema_tool import apply_schema

    admin = CassandraConnection(settings, use_keyspace=False)
    try:
        admin.session().execute(render_drop_keyspace_cql(settings.keyspace), timeout=120)
        apply_schema(admin.session(), settings)
    finally:
        admin.close()


def drop_keyspace(settings: Settings) -> None:
    """Drops a phase's keyspace once its rows are counted: its memtables and compactions would otherwise compete
    with the next phase (auto_snapshot is off locally, so this is cheap)."""
    admin = CassandraConnection(settings, use_keyspace=False)
    try:
        admin.session().execute(render_drop_keyspace_cql(settings.keyspace), timeout=120)
    finally:
        admin.close()


BACKGROUND_POOLS = ("CompactionExecutor", "MemtableFlushWriter", "MemtablePostFlush", "MemtableReclaimMemory")


def wait_for_quiet_node(settings: Settings, limit_seconds: float = 180) -> float:
    """Waits until Cassandra has no flush or compaction running or queued, so each measured phase starts on an
    idle node rather than paying for the previous one's writes; returns the seconds waited."""
    connection = CassandraConnection(settings, use_keyspace=False)
    started = time.monotonic()
    try:
        session = connection.session()
        while time.monotonic() - started < limit_seconds:
            busy = sum(row.active_tasks + row.pending_tasks
                       for row in session.execute("SELECT name, active_tasks, pending_tasks FROM "
                                                  "system_views.thread_pools") if row.name in BACKGROUND_POOLS)
            if busy == 0:
                break
            time.sleep(1)
    finally:
        connection.close()
    return time.monotonic() - started


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Gateway:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gateway(name: str, settings: Settings, out: Path) -> Gateway:
    """The local gateway in its own process, as `make serve` runs it, on this keyspace and Redis database."""
    port = free_port()
    env = {
        **os.environ,
        "PLAYER_SESSIONS_KEYSPACE": settings.keyspace,
        "PLAYER_SESSIONS_CASSANDRA_PORT": str(settings.cassandra_port),
        "PLAYER_SESSIONS_REDIS_URL": settings.redis_url,
        "PLAYER_SESSIONS_CACHE_ENABLED": "true" if settings.cache_enabled else "false",
        "PLAYER_SESSIONS_RETENTION_DAYS": str(settings.retention_days),
        "PLAYER_SESSIONS_API_KEY": API_KEY,
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    log_path = out / f"gateway-{name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "player_sessions_local.gateway", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    return Gateway(name, f"http://127.0.0.1:{port}", process, log_path)


def wait_until_listening(gateway: Gateway, timeout: float = 60) -> None:
    port = urlsplit(gateway.url).port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway {gateway.name} exited: {gateway.log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gateway {gateway.name} did not listen within {timeout:g} s")


@dataclass
class Environments:
    """Gateway processes serving one configuration, one per client. Lambda serves N concurrent requests with N
    execution environments, each running one invocation at a time; one gateway process does the same (it
    runs one invocation at a time), so N clients get N processes."""

    name: str
    gateways: list[Gateway]

    def url_for(self, client: int) -> str:
        return self.gateways[client % len(self.gateways)].url

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


def start_environments(name: str, settings: Settings, count: int, out: Path) -> Environments:
    return Environments(name, [start_gateway(f"{name}-{i}", settings, out) for i in range(count)])


class HttpClient:
    """One keep-alive connection, as a game client holds one. The standard library's client: the load generator
    shares the two cores with everything it measures, so it should cost little."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"x-api-key": API_KEY}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # the next request reconnects
            raise

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
        return json.loads(body)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()


def http_client(url: str, timeout: float = 30) -> HttpClient:
    return HttpClient(url, timeout)


def warm_up(environments: Environments) -> None:
    """Imports every function and opens the connections in each process (Lambda's cold start), not timed."""

    def warm(gateway: Gateway) -> None:
        wait_until_listening(gateway)
        with http_client(gateway.url) as client:
            client.request("POST", "/events", b"[]")
            client.request("GET", "/countries/starts?hours=0")
            client.get_json("/health")

    with ThreadPoolExecutor(len(environments.gateways)) as pool:
        list(pool.map(warm, environments.gateways))


# --- CPU spent per phase --------------------------------------------------------------------------------

LOCAL_DIR = Path(__file__).resolve().parents[2] / ".local"
SERVER_PID_FILES = {"cassandra": LOCAL_DIR / "cassandra" / "cassandra.pid", "redis": LOCAL_DIR / "redis" / "redis.pid"}
_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU of a live process (read from /proc; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK  # all but idle and iowait


def own_cpu_seconds() -> float:
    """This process (every thread) and the child processes it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def server_pids() -> dict[str, int]:
    pids = {}
    for name, path in SERVER_PID_FILES.items():
        try:
            pids[name] = int(path.read_text().strip())
        except (OSError, ValueError):
            pass
    return pids


@dataclass
class CpuUse:
    """CPU seconds a phase cost: the bench's side (loader, bare loop, gateways and clients), the local Cassandra
    and Redis, and everything else on the machine (other people's work: the noise)."""

    client: float
    cassandra: float
    redis: float
    others: float
    wall: float

    def per_thousand(self, events: int) -> dict[str, float]:
        scale = 1000 / events if events else 0.0
        return {"client": self.client * scale, "cassandra": self.cassandra * scale, "redis": self.redis * scale}


class CpuMeter:
    def __init__(self, watched: Callable[[], Sequence[int]] = lambda: ()) -> None:
        self._watched = watched
        self._servers = server_pids()

    def __enter__(self) -> CpuMeter:
        self._pids = list(self._watched())
        self._start = self._snapshot()
        return self

    def _snapshot(self) -> tuple[float, float, dict[str, float], float, float]:
        return (own_cpu_seconds(), sum(process_cpu_seconds(pid) for pid in self._pids),
                {name: process_cpu_seconds(pid) for name, pid in self._servers.items()}, machine_busy_seconds(),
                time.monotonic())

    def stop(self) -> CpuUse:
        """Call before watched processes end (their CPU is read from /proc while they live)."""
        own, watched, servers, busy, wall = self._snapshot()
        own0, watched0, servers0, busy0, wall0 = self._start
        client = own - own0 + watched - watched0
        cassandra = servers.get("cassandra", 0.0) - servers0.get("cassandra", 0.0)
        redis_cpu = servers.get("redis", 0.0) - servers0.get("redis", 0.0)
        return CpuUse(client, cassandra, redis_cpu, max(0.0, busy - busy0 - client - cassandra - redis_cpu),
                      wall - wall0)

    def __exit__(self, *exc_info: object) -> None:
        return None


# --- The physical limit: a bare loop of prepared inserts -------------------------------------------------

_bare_statements: list[Statement | list[Statement]] = []
"""Set before the worker processes fork; each one sends every ``processes``-th request."""


def as_requests(statements: list[Statement]) -> list[Statement | list[Statement]]:
    """The statements as the ingest path sends them: a session's start half and end half, when the events hold
    exactly one of each, go as one single-partition unlogged batch (see cassandra_store._event_statements);
    every other statement on its own. The batch takes the place of the session's second half."""
    halves: dict[Any, list[int]] = {}
    for index, (cql, params) in enumerate(statements):
        if cql in (WRITE_START_HALF, WRITE_END_HALF):
            halves.setdefault(params[-1], []).append(index)
    paired: dict[int, int] = {}
    for indexes in halves.values():
        kinds = {statements[i][0] for i in indexes}
        if len(indexes) == 2 and kinds == {WRITE_START_HALF, WRITE_END_HALF}:
            paired[indexes[1]] = indexes[0]
    partners = set(paired.values())
    requests: list[Statement | list[Statement]] = []
    for index, statement in enumerate(statements):
        if index in partners:
            continue
        requests.append([statements[paired[index]], statement] if index in paired else statement)
    return requests


def _bare_worker(settings: Settings, index: int, processes: int, ready, go, results) -> None:
    cluster = build_cluster(settings)
    session = cluster.connect(settings.keyspace)
    prepared = {cql: session.prepare(cql) for cql in (WRITE_START_HALF, WRITE_START_ROW, WRITE_END_HALF,
                                                      WRITE_COMPLETED)}
    work = []
    for request in itertools.islice(_bare_statements, index, None, processes):
        if isinstance(request, list):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for cql, params in request:
                batch.add(prepared[cql], params)
            work.append((batch, None))
        else:
            work.append((prepared[request[0]], request[1]))
    ready.release()
    go.wait()
    written, retried, first_error = len(work), 0, None
    # A statement that timed out (a busy node) is written again, as the loader re-sends a chunk: same rows.
    for _ in range(BARE_ATTEMPTS):
        failed = []
        for statement, (success, result) in zip(work, execute_concurrent(
                session, work, concurrency=WRITE_CONCURRENCY, raise_on_first_error=False, results_generator=True)):
            if not success:
                failed.append(statement)
                first_error = first_error or repr(result)
        if not failed:
            break
        retried += len(failed)
        work = failed
    results.put((written, retried, len(failed), first_error))
    cluster.shutdown()


@dataclass
class Throughput:
    path: str
    events: int
    seconds: float
    errors: int = 0
    """Failures that were not recovered."""
    retries: int = 0
    """Requests sent again after a timeout or a 503 (writes are idempotent): reported, not hidden."""
    detail: str = ""
    cpu: CpuUse | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def run_bare_loop(settings: Settings, statements: list[Statement], events: int, processes: int) -> Throughput:
    global _bare_statements
    _bare_statements = as_requests(statements)
    context = multiprocessing.get_context("fork")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    workers = [context.Process(target=_bare_worker, args=(settings, i, processes, ready, go, results))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    outcomes = [results.get() for _ in workers]
    seconds = time.perf_counter() - started
    for worker in workers:
        worker.join()
    _bare_statements = []
    written = sum(o[0] for o in outcomes)
    retried = sum(o[1] for o in outcomes)
    errors = sum(o[2] for o in outcomes)
    first_error = next((o[3] for o in outcomes if o[3]), "")
    return Throughput("bare loop (prepared inserts)", events, seconds, errors, retried,
                      f"{len(statements):,} statements in {written:,} requests (a session's two halves in one "
                      f"single-partition batch, as the ingest path sends them), {processes} processes x "
                      f"{WRITE_CONCURRENCY} in flight"
                      + (f"; first failure: {first_error}" if first_error else ""))


# --- HTTP ingest throughput ------------------------------------------------------------------------------


def run_http_ingest(environments: Environments, events: list[dict], clients: int) -> Throughput:
    """``clients`` clients post the events in file order, 10 a batch; every batch must be stored whole."""
    bodies = [json.dumps(events[i:i + BATCH_EVENTS]).encode() for i in range(0, len(events), BATCH_EVENTS)]
    sizes = [len(events[i:i + BATCH_EVENTS]) for i in range(0, len(events), BATCH_EVENTS)]
    next_batch = iter(range(len(bodies)))
    lock = threading.Lock()
    errors: list[str] = []
    resent: list[int] = []

    def client_loop(number: int) -> None:
        with http_client(environments.url_for(number)) as client:
            while True:
                with lock:
                    index = next(next_batch, None)
                if index is None:
                    return
                for attempt in range(BARE_ATTEMPTS):
                    try:
                        status, body = client.request("POST", "/events", bodies[index])
                    except (OSError, http.client.HTTPException) as error:
                        status, body = 0, f"{type(error).__name__}: {error}".encode()
                    if status != 503:
                        break
                    # What the API asks of a client: re-send the whole batch (it is safe) after Retry-After.
                    resent.append(index)
                    time.sleep(0.5 * (attempt + 1))
                try:
                    stored = json.loads(body).get("stored") if status == 200 else None
                except ValueError:
                    stored = None
                if stored != sizes[index]:
                    errors.append(f"batch {index}: HTTP {status} {body[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Throughput("HTTP ingest (POST /events)", len(events), seconds, len(errors), len(resent),
                      f"{len(bodies):,} batches of {BATCH_EVENTS}, {clients} clients, "
                      f"{len(environments.gateways)} gateway processes"
                      + (f"; first error: {errors[0]}" if errors else ""))


# --- Counting what was stored ----------------------------------------------------------------------------

COUNT_HOUR_STARTS = "SELECT session_id FROM session_starts WHERE hour = ? AND shard = ?"
COUNT_PLAYER_COMPLETED = "SELECT session_id FROM completed_sessions_by_player WHERE player_id = ?"


@dataclass
class RowCount:
    table: str
    expected: int
    found: int
    missing: int
    extra: int


def count_rows(settings: Settings, expected: ExpectedRows, rng: random.Random) -> list[RowCount]:
    """Reads back, with plain CQL (not the service's code), every start row and every completed row the
    events should have left, and a sample of session rows."""
    connection = CassandraConnection(settings)
    session = connection.session()
    try:
        hours = sorted({hour_of(ts) for _, _, ts in expected.starts.values()})
        keys = [(hour, shard) for hour in hours for shard in range(settings.start_shards)]
        found_starts: set[uuid.UUID] = set()
        for result in _read_all(session, COUNT_HOUR_STARTS, keys):
            found_starts.update(row.session_id for row in result)
        players = sorted(expected.completed)
        found_completed: dict[str, set[uuid.UUID]] = {}
        for player, result in zip(players, _read_all(session, COUNT_PLAYER_COMPLETED, [(p,) for p in players])):
            found_completed[player] = {row.session_id for row in result}
        all_sessions = sorted(expected.sessions())
        sample = rng.sample(all_sessions, min(SESSIONS_SAMPLE, len(all_sessions)))
        halves_missing = found_sample = 0
        for session_id, rows in zip(sample, _read_all(session, READ_SESSION, [(s,) for s in sample])):
            row = rows[0] if rows else None
            found_sample += row is not None
            wants_start, wants_end = session_id in expected.starts, session_id in expected.ends
            halves_missing += row is None or (wants_start and row.start_ts is None) or (
                wants_end and row.end_ts is None)
    finally:
        connection.close()
    expected_starts = set(expected.starts)
    completed_missing = sum(len(s - found_completed.get(p, set())) for p, s in expected.completed.items())
    completed_extra = sum(len(found_completed[p] - s) for p, s in expected.completed.items())
    return [
        RowCount("session_starts", len(expected_starts), len(found_starts), len(expected_starts - found_starts),
                 len(found_starts - expected_starts)),
        RowCount("completed_sessions_by_player", expected.completed_count,
                 sum(len(s) for s in found_completed.values()), completed_missing, completed_extra),
        RowCount(f"sessions (sample of {len(sample)})", len(sample), found_sample, halves_missing, 0),
    ]


def _read_all(session, cql: str, keys: Sequence[tuple]) -> list[list]:
    """Every row of each key's query. Counting must not fail on a node still compacting the phase's writes:
    the bulk profile's long timeout, and a read that timed out anyway is read again."""
    statement = session.prepare(cql)
    rows: list[list | None] = [None] * len(keys)
    pending = list(range(len(keys)))
    for attempt in range(BARE_ATTEMPTS):
        results = execute_concurrent(session, [(statement, keys[i]) for i in pending], concurrency=16,
                                     raise_on_first_error=False, execution_profile=BULK_PROFILE)
        failed = []
        for index, (success, result) in zip(pending, results):
            if success:
                rows[index] = list(result)
            else:
                failed.append(index)
        if not failed:
            return rows  # type: ignore[return-value]
        pending = failed
        time.sleep(1 + attempt)
    raise RuntimeError(f"{len(pending)} reads of {cql!r} failed {BARE_ATTEMPTS} times")


@dataclass
class MetricCheck:
    """The country metric over 8760 hours against the file's distinct starts (its first request builds
    every rollup: timed on its own)."""

    seconds: float
    total: int
    expected_total: int
    countries_differing: int


def check_metric(url: str, expected: ExpectedRows) -> MetricCheck:
    # The first request after a load builds a year of rollups: far longer than any other (see the report).
    with http_client(url, timeout=900) as client:
        started = time.perf_counter()
        body = client.get_json("/countries/starts?hours=8760")
        seconds = time.perf_counter() - started
    counted = {item["country"]: item["starts"] for item in body["countries"]}
    wanted = expected.starts_by_country
    differing = sum(1 for country in set(counted) | set(wanted) if counted.get(country, 0) != wanted[country])
    return MetricCheck(seconds, body["total"], sum(wanted.values()), differing)


# --- Latency per route -----------------------------------------------------------------------------------

Request = tuple[str, str, bytes | None]


@dataclass
class RouteLatency:
    name: str
    kind: str
    """ingest, players, metric or page: which target applies."""
    cache: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def target_ms(self) -> float:
        return TARGET_P90_MS[self.kind]

    @property
    def met(self) -> bool:
        return self.errors == 0 and self.percentile(0.9) <= self.target_ms


def measure_route(environments: Environments, make_request: Callable[[random.Random], Request], clients: int,
                  seconds: float, seed: int) -> tuple[list[float], int, str]:
    """``clients`` threads send requests back to back for ``seconds``; a status of 300 or more is an error."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(number: int, rng: random.Random) -> None:
        mine: list[float] = []
        with http_client(environments.url_for(number)) as client:
            while time.monotonic() < deadline:
                method, path, body = make_request(rng)
                started = time.perf_counter()
                try:
                    status, answer = client.request(method, path, body)
                except (OSError, http.client.HTTPException) as error:
                    errors.append(f"{method} {path}: {type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if status >= 300:
                    errors.append(f"{method} {path}: HTTP {status} {answer[:200]!r}")
                else:
                    mine.append(elapsed)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client_loop, args=(i, random.Random(seed + i))) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(errors), errors[0] if errors else ""


def fresh_batch(rng: random.Random, players: Sequence[tuple[str, str]]) -> bytes:
    """Ten events as a game client sends them: five sessions of known players that ended in the last half
    hour, start and end in the same batch."""
    now = datetime.now(UTC)
    batch = []
    for _ in range(BATCH_EVENTS // 2):
        player, country = rng.choice(players)
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        started = now - timedelta(seconds=rng.uniform(60, 1800))
        ended = started + (now - started) * rng.random()
        batch.append({"event": "start", "player_id": player, "session_id": session_id, "country": country,
                      "ts": started.isoformat()})
        batch.append({"event": "end", "player_id": player, "session_id": session_id, "ts": ended.isoformat()})
    return json.dumps(batch).encode()


@dataclass(frozen=True)
class RoutePlan:
    name: str
    kind: str
    cache: str
    environments: Environments
    make_request: Callable[[random.Random], Request]


def route_plans(cached: Environments, uncached: Environments, expected: ExpectedRows) -> list[RoutePlan]:
    # Drawn as the data is: active players and big countries more often.
    player_draws = [player for player, _, _ in expected.starts.values() if player in expected.completed]
    player_countries = list({player: (player, country) for player, country, _ in expected.starts.values()}.values())
    weights = expected.starts_by_country
    countries, country_weights = list(weights), list(weights.values())

    def ingest(rng: random.Random) -> Request:
        return "POST", "/events", fresh_batch(rng, player_countries)

    def players(rng: random.Random) -> Request:
        return "GET", f"/players/{rng.choice(player_draws)}/sessions", None

    def metric(hours: int) -> Callable[[random.Random], Request]:
        return lambda rng: ("GET", f"/countries/starts?hours={hours}", None)

    def page(rng: random.Random) -> Request:
        country = rng.choices(countries, country_weights)[0]
        return "GET", f"/countries/{country}/starts?hours={rng.choice(METRIC_HOURS)}&limit=100", None

    plans = []
    for cache, environments in (("on", cached), ("off", uncached)):
        plans.append(RoutePlan("GET /players/{id}/sessions", "players", cache, environments, players))
    for hours in METRIC_HOURS:
        for cache, environments in (("on", cached), ("off", uncached)):
            plans.append(RoutePlan(f"GET /countries/starts?hours={hours}", "metric", cache, environments,
                                   metric(hours)))
    for cache, environments in (("on", cached), ("off", uncached)):
        plans.append(RoutePlan("GET /countries/{c}/starts (limit 100)", "page", cache, environments, page))
    # Last: its fresh sessions land in the open hour, which every country read counts row by row.
    plans.append(RoutePlan("POST /events (10 events)", "ingest", "on", cached, ingest))
    return plans


def measure_latency(plans: Sequence[RoutePlan], clients: int, seconds: float, seed: int) -> list[RouteLatency]:
    results = []
    for number, plan in enumerate(plans):
        # A few requests first, not counted: imports, prepared statements, connections of every client.
        measure_route(plan.environments, plan.make_request, clients, min(1.0, seconds / 4), seed + 1000 * number)
        latencies, errors, first_error = measure_route(plan.environments, plan.make_request, clients, seconds,
                                                       seed + 1000 * number + 500)
        result = RouteLatency(plan.name, plan.kind, plan.cache, latencies, errors, first_error)
        print(f"  {_route_label(result):55} {len(latencies):>6} requests, p90 {result.percentile(0.9):6.1f} ms",
              file=sys.stderr, flush=True)
        results.append(result)
    return results


def _route_label(result: RouteLatency) -> str:
    return f"{result.name} [cache {result.cache}]" if result.kind != "ingest" else result.name


# --- The machine, the report, the plot -------------------------------------------------------------------


def machine_description(settings: Settings) -> dict[str, str]:
    cpu_model = "unknown"
    memory = "unknown"
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name"))
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    connection = CassandraConnection(settings, use_keyspace=False)
    try:
        cassandra = connection.session().execute("SELECT release_version FROM system.local").one().release_version
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


def latency_table(latencies: Sequence[RouteLatency]) -> list[str]:
    lines = ["| route | cache | requests | errors | p50 ms | p90 ms | p99 ms | target p90 | met |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in latencies:
        lines.append(f"| `{r.name}` | {r.cache} | {len(r.latencies_ms)} | {r.errors} | {_ms(r.percentile(0.5))} | "
                     f"{_ms(r.percentile(0.9))} | {_ms(r.percentile(0.99))} | {r.target_ms:g} ms | "
                     f"{'yes' if r.met else '**no**'} |")
    return lines


def throughput_table(bare: Throughput, paths: Sequence[tuple[Throughput, float, list[RowCount]]]) -> list[str]:
    lines = ["| path | events | seconds | events/s | ratio to bare | target | errors | re-sent | rows lost | rows extra |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {bare.path} | {bare.events:,} | {bare.seconds:.1f} | {bare.events_per_second:,.0f} | 1.00 | | "
             f"{bare.errors} | {bare.retries} | | |"]
    for path, target, counts in paths:
        ratio = path.events_per_second / bare.events_per_second
        lines.append(f"| {path.path} | {path.events:,} | {path.seconds:.1f} | {path.events_per_second:,.0f} | "
                     f"{ratio:.2f} | >= {target:.2f} {'yes' if ratio >= target else '**no**'} | {path.errors} | "
                     f"{path.retries} | {sum(c.missing for c in counts)} | {sum(c.extra for c in counts)} |")
    return lines


def cpu_rows(paths: Sequence[Throughput]) -> list[str]:
    rows = []
    for path in paths:
        if path.cpu is None:
            continue
        per = path.cpu.per_thousand(path.events)
        rows.append(f"| {path.path} | {per['client'] * 1000:,.0f} | {per['cassandra'] * 1000:,.0f} | "
                    f"{per['redis'] * 1000:,.0f} | {sum(per.values()) * 1000:,.0f} | "
                    f"{path.cpu.others / path.cpu.wall if path.cpu.wall else 0:.2f} |")
    return rows


def plot_latency(latencies: Sequence[RouteLatency], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in latencies if r.latencies_ms]
    labels = [_route_label(r) for r in shown]
    figure, axes = plt.subplots(figsize=(12, 0.45 * len(shown) + 1.8))
    positions = list(range(len(shown), 0, -1))
    axes.boxplot([r.latencies_ms for r in shown], positions=positions, orientation="horizontal", whis=(1, 99),
                 showfliers=False, widths=0.6, medianprops={"color": "black"})
    for position, result in zip(positions, shown):
        axes.plot(result.percentile(0.9), position, marker="D", color="tab:blue", markersize=6,
                  label="p90" if position == positions[0] else None)
        axes.plot(result.percentile(0.99), position, marker="o", color="tab:orange", markersize=5,
                  label="p99" if position == positions[0] else None)
        axes.plot([result.target_ms] * 2, [position - 0.4, position + 0.4], color="red", linewidth=2,
                  label="p90 target" if position == positions[0] else None)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale); box p25-p75, whiskers p1-p99")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# --- The run ---------------------------------------------------------------------------------------------


def run(options: BenchOptions) -> int:
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    base = get_settings()
    redis_url = redis_url_with_db(base.redis_url, options.redis_db)
    loaded = base.model_copy(update={"keyspace": options.keyspace, "redis_url": redis_url, "cache_enabled": True,
                                     "api_key": None,
                                     "retention_days": options.retention_days or base.retention_days})
    bare_settings = loaded.model_copy(update={"keyspace": f"{options.keyspace}_bare"})
    http_settings = loaded.model_copy(update={"keyspace": f"{options.keyspace}_http"})
    rng = random.Random(options.seed)
    started_at = datetime.now(UTC)
    load_before = load_average()
    machine = machine_description(loaded)
    say(f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory']}, Cassandra "
        f"{machine['cassandra']}; load average {load_before}")

    for settings in (loaded, bare_settings, http_settings):
        fresh_keyspace(settings)
    flush_redis(redis_url)
    # Started now (cheap: the functions are imported by each phase's warm-up), listening before anything is
    # measured, so that no process starts while a phase runs.
    environments = {
        "http": start_environments("http-ingest", http_settings, options.http_clients, out),
        "uncached": start_environments("uncached", loaded.model_copy(update={"cache_enabled": False}),
                                       options.clients, out),
        "cached": start_environments("cached", loaded, options.clients, out),
    }
    try:
        data_path = out / "events.jsonl.gz"
        say(f"generating {options.events:,} events (seed {options.seed}, {options.days} days) into {data_path}")
        clock_started = time.perf_counter()
        generated_end = datetime.now(UTC).replace(microsecond=0)
        with open_for_writing(data_path) as file:
            for event in generate_events(options.events, options.seed, generated_end, options.days):
                file.write(json.dumps(event) + "\n")
        generation_seconds = time.perf_counter() - clock_started
        for group in environments.values():
            for gateway in group.gateways:
                wait_until_listening(gateway)

        statements: list[Statement] = []
        expected = expected_rows(read_events(data_path), datetime.now(UTC), loaded, statements)
        say(f"{expected.lines:,} events: {len(expected.starts):,} starts, {len(expected.ends):,} ends, "
            f"{expected.completed_count:,} completed sessions, {len(expected.completed):,} players with one; "
            f"the ingest path writes {len(statements):,} rows for them")

        say(f"physical limit: bare loop of {len(statements):,} prepared inserts, {options.processes} processes")
        quiet_waits = [wait_for_quiet_node(loaded)]
        with CpuMeter() as meter:
            bare = run_bare_loop(bare_settings, statements, expected.lines, options.processes)
            bare.cpu = meter.stop()
        row_statements = len(statements)
        del statements
        gc.collect()
        say(f"  {bare.events_per_second:,.0f} events/s ({bare.seconds:.1f} s), {bare.errors} errors")
        bare_counts = count_rows(bare_settings, expected, rng)
        drop_keyspace(bare_settings)
        quiet_waits.append(wait_for_quiet_node(loaded))

        say(f"loader: load_file with {options.processes} processes, {options.chunks_in_flight} chunks in flight each")
        services = build_services(loaded, SystemClock())
        with CpuMeter() as meter:
            report = load_file(data_path, services, rebase_to_now=False, rejects_path=out / "load-rejects.jsonl",
                               processes=options.processes, chunks_in_flight=options.chunks_in_flight,
                               progress=not options.quick)
            loader_cpu = meter.stop()
        if services.cassandra is not None:
            services.cassandra.close()
        not_stored = report.discarded + report.rejected
        loader = Throughput(f"loader (load_file, {options.processes} processes)", report.lines, report.seconds,
                            not_stored, report.retries, f"{report.stored:,} stored, {report.discarded} discarded, "
                            f"{report.rejected} rejected, chunks of {CHUNK_EVENTS}, "
                            f"{options.chunks_in_flight} in flight per process", loader_cpu)
        say(f"  {loader.events_per_second:,.0f} events/s ({loader.seconds:.1f} s), {loader.detail}")
        loader_counts = count_rows(loaded, expected, rng)
        quiet_waits.append(wait_for_quiet_node(loaded))

        http_events = list(read_events(data_path, options.http_events))
        http_expected = expected_rows(http_events, datetime.now(UTC), http_settings)
        say(f"HTTP ingest: the first {len(http_events):,} events, {options.http_clients} clients, "
            f"batches of {BATCH_EVENTS}")
        warm_up(environments["http"])
        http_pids = [gateway.process.pid for gateway in environments["http"].gateways]
        with CpuMeter(lambda: http_pids) as meter:
            http = run_http_ingest(environments["http"], http_events, options.http_clients)
            http.cpu = meter.stop()
        environments.pop("http").stop()
        say(f"  {http.events_per_second:,.0f} events/s ({http.seconds:.1f} s), {http.errors} errors")
        http_counts = count_rows(http_settings, http_expected, rng)
        drop_keyspace(http_settings)
        quiet_waits.append(wait_for_quiet_node(loaded))

        say("first request of the country metric over 8760 hours (builds every rollup)")
        warm_up(environments["uncached"])
        rollup_build = check_metric(environments["uncached"].url_for(0), expected)
        say(f"  {rollup_build.seconds * 1000:,.0f} ms; total {rollup_build.total:,} "
            f"(file: {rollup_build.expected_total:,})")

        say(f"latency: {options.clients} clients, {options.seconds:g} s per route")
        warm_up(environments["cached"])
        plans = route_plans(environments["cached"], environments["uncached"], expected)
        # Reads first, concurrent then one client at a time; POST /events last in both: its fresh sessions land
        # in the open hours, which every country count reads row by row.
        phases = [[plan for plan in plans if plan.kind != "ingest"], [plan for plan in plans if plan.kind == "ingest"]]
        latencies, single_latencies = [], []
        for number, phase in enumerate(phases):
            latencies += measure_latency(phase, options.clients, options.seconds, options.seed + 100 * number)
            if options.single_seconds > 0:
                say(f"  one client at a time, {options.single_seconds:g} s per route")
                single_latencies += measure_latency(phase, 1, options.single_seconds, options.seed + 100 * number + 7)
    finally:
        for group in environments.values():
            group.stop()

    summary = Summary(
        options=options, machine=machine, started_at=started_at, load_before=load_before,
        load_after=load_average(), generation_seconds=generation_seconds, expected=expected,
        row_statements=row_statements, bare=bare, bare_counts=bare_counts, loader=loader,
        loader_counts=loader_counts, http=http, http_counts=http_counts,
        rollup_build=rollup_build, latencies=latencies, single_latencies=single_latencies,
        quiet_waits=quiet_waits,
    )
    plot_latency(latencies, out / "latency.png",
                 f"{expected.lines:,} events loaded; {options.clients} clients, {options.seconds:g} s per route; "
                 f"{machine['cpus']} CPUs; {started_at:%Y-%m-%d %H:%M} UTC")
    (out / "summary.md").write_text(summary.markdown())
    (out / "results.json").write_text(json.dumps(summary.as_json(), indent=2))
    print(summary.console())
    print(f"\nwritten: {out / 'summary.md'}, {out / 'latency.png'}, {out / 'results.json'}")
    return 0 if summary.clean else 1


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
    rollup_build: MetricCheck
    latencies: list[RouteLatency]
    single_latencies: list[RouteLatency]
    """The same routes, one client at a time: what a request costs without waiting for a core."""
    quiet_waits: list[float]
    """Seconds waited before each measured write phase for Cassandra to finish flushing and compacting."""

    @property
    def loader_ratio(self) -> float:
        return self.loader.events_per_second / self.bare.events_per_second

    @property
    def http_ratio(self) -> float:
        return self.http.events_per_second / self.bare.events_per_second

    @property
    def errors(self) -> int:
        return (self.bare.errors + self.loader.errors + self.http.errors
                + sum(r.errors for r in [*self.latencies, *self.single_latencies]))

    @property
    def lost_rows(self) -> int:
        counts = self.bare_counts + self.loader_counts + self.http_counts
        metric_gap = abs(self.rollup_build.total - self.rollup_build.expected_total)
        return sum(c.missing + c.extra for c in counts) + metric_gap

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.lost_rows == 0

    def targets(self) -> list[tuple[str, bool]]:
        checks = [(f"p90 {_route_label(r)} <= {r.target_ms:g} ms", r.met) for r in self.latencies]
        checks.append((f"loader >= {TARGET_LOADER_RATIO:.0%} of the bare loop", self.loader_ratio >= TARGET_LOADER_RATIO))
        checks.append((f"HTTP ingest >= {TARGET_HTTP_RATIO:.0%} of the bare loop", self.http_ratio >= TARGET_HTTP_RATIO))
        checks.append(("no error, nothing lost", self.clean))
        return checks

    def markdown(self) -> str:
        m, o, e = self.machine, self.options, self.expected
        missed = [name for name, met in self.targets() if not met]
        lines = [
            f"# Benchmark, {self.started_at:%Y-%m-%d %H:%M} UTC",
            "",
            f"**Machine**: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']} memory, {m['os']}; Python "
            f"{m['python']}, Cassandra {m['cassandra']}, {m['driver']}. Cassandra, Redis, the gateways and the "
            f"load generator all run on it; it is shared (load average {self.load_before} before, "
            f"{self.load_after} after).",
            "",
            f"**Data**: {e.lines:,} generated events (seed {o.seed}, {o.days} days, generated in "
            f"{self.generation_seconds:.1f} s): {len(e.starts):,} sessions started, {len(e.ends):,} ended, "
            f"{e.completed_count:,} completed, {len(e.completed):,} players with a completed session, "
            f"{len(e.starts_by_country)} countries. The ingest path writes {self.row_statements:,} rows for them "
            "(session halves, start rows, completed rows), plus rollup revisions for late starts. Retention "
            f"{o.retention_days or 'as configured (365)'} days.",
            "",
            f"**Targets**: {'all met' if not missed else 'missed: ' + '; '.join(missed)}.",
            "",
            f"## Latency ({o.clients} concurrent clients, {o.seconds:g} s per route, through the local gateway)",
            "",
            "Cache on: Redis as deployed (repeated questions are answered from it). Cache off: the gateway runs "
            "with `PLAYER_SESSIONS_CACHE_ENABLED=false`, so every request reads Cassandra (the cache-cold case). "
            "POST /events sends five fresh sessions of known players per batch; reads draw players and "
            "countries as the data has them; country pages draw hours from 1, 24, 168, 8760.",
            "",
            *latency_table(self.latencies),
            "",
            *self._single_client_section(),
            f"First country-metric request after the load (hours=8760, builds every rollup once): "
            f"{self.rollup_build.seconds * 1000:,.0f} ms.",
            "",
            "## Throughput (same run, same file)",
            "",
            *throughput_table(self.bare, [(self.loader, TARGET_LOADER_RATIO, self.loader_counts),
                                          (self.http, TARGET_HTTP_RATIO, self.http_counts)]),
            "",
            f"- Bare loop: {self.bare.detail}.",
            f"- Loader: {self.loader.detail}.",
            f"- HTTP ingest: {self.http.detail}.",
            "- Re-sent: requests (bare loop), chunks (loader) or batches (HTTP, after a 503) sent again after a "
            "timeout; every write is idempotent, so a re-send stores nothing twice. Before each phase the bench "
            "waited for Cassandra to finish flushing and compacting the previous one's writes ("
            + ", ".join(f"{w:.0f} s" for w in self.quiet_waits) + ").",
            "",
            "## Where the CPU went (2 cores shared by everything)",
            "",
            "CPU milliseconds per 1,000 events, per write path: the path's own processes (bare-loop workers; loader "
            "and its workers; gateway processes and HTTP clients), the local Cassandra and Redis, and what the rest "
            "of the machine used meanwhile (other people's work on this shared machine, in CPU seconds per second "
            "of the phase, out of 2).",
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
        for name, counts in (("bare loop", self.bare_counts), ("loader", self.loader_counts),
                             ("HTTP ingest", self.http_counts)):
            lines += [f"| {name} | {c.table} | {c.expected:,} | {c.found:,} | {c.missing} | {c.extra} |"
                      for c in counts]
        check = self.rollup_build
        lines.append(f"| loader | country metric total, 8760 h (API) | {check.expected_total:,} | {check.total:,} | "
                     f"{max(0, check.expected_total - check.total)} | {max(0, check.total - check.expected_total)} |")
        lines += ["", f"Errors: {self.errors}. Rows lost or extra: {self.lost_rows}.", "",
                  "![latency per route](latency.png)", ""]
        return "\n".join(lines)

    def _single_client_section(self) -> list[str]:
        if not self.single_latencies:
            return []
        return [
            f"### The same routes, one client at a time ({self.options.single_seconds:g} s per route)",
            "",
            "What one request costs when it does not wait for a core held by another client, by Cassandra or "
            "by a neighbour; the targets are judged on the table above.",
            "",
            *latency_table(self.single_latencies),
            "",
        ]

    def console(self) -> str:
        lines = ["", f"{'route':58} {'requests':>8} {'errors':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'target':>7}"]
        for r in self.latencies:
            lines.append(f"{_route_label(r):58} "
                         f"{len(r.latencies_ms):>8} {r.errors:>6} {r.percentile(0.5):>7.1f} "
                         f"{r.percentile(0.9):>7.1f} {r.percentile(0.99):>7.1f} {r.target_ms:>7g}"
                         f"{'' if r.met else '  MISSED'}")
        lines += [
            f"first metric request (rollup build): {self.rollup_build.seconds * 1000:,.0f} ms",
            "",
            f"bare loop   {self.bare.events_per_second:>9,.0f} events/s ({self.bare.events:,} events, "
            f"{self.bare.retries} requests re-sent)",
            f"loader      {self.loader.events_per_second:>9,.0f} events/s  ratio {self.loader_ratio:.2f} "
            f"(target >= {TARGET_LOADER_RATIO:.2f}; {self.loader.retries} chunks re-sent)",
            f"HTTP ingest {self.http.events_per_second:>9,.0f} events/s  ratio {self.http_ratio:.2f} "
            f"(target >= {TARGET_HTTP_RATIO:.2f}, {self.http.events:,} events; {self.http.retries} batches re-sent)",
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
            "latency": [{"route": r.name, "cache": r.cache, "kind": r.kind, "requests": len(r.latencies_ms),
                         "errors": r.errors, "first_error": r.first_error, "p50_ms": r.percentile(0.5),
                         "p90_ms": r.percentile(0.9), "p99_ms": r.percentile(0.99), "target_p90_ms": r.target_ms,
                         "met": r.met} for r in self.latencies],
            "latency_one_client": [{"route": r.name, "cache": r.cache, "kind": r.kind,
                                    "requests": len(r.latencies_ms), "errors": r.errors, "p50_ms": r.percentile(0.5),
                                    "p90_ms": r.percentile(0.9), "p99_ms": r.percentile(0.99)}
                                   for r in self.single_latencies],
            "rollup_build_ms": self.rollup_build.seconds * 1000,
            "throughput": {t.path: {"events": t.events, "seconds": t.seconds, "events_per_second":
                                    t.events_per_second, "errors": t.errors, "retries": t.retries,
                                    "detail": t.detail, "cpu": asdict(t.cpu) if t.cpu else None}
                           for t in (self.bare, self.loader, self.http)},
            "ratios": {"loader": self.loader_ratio, "http": self.http_ratio},
            "rows": {name: [asdict(c) for c in counts] for name, counts in
                     (("bare", self.bare_counts), ("loader", self.loader_counts), ("http", self.http_counts))},
            "metric_check": asdict(self.rollup_build),
            "quiet_waits_seconds": self.quiet_waits,
            "errors": self.errors,
            "lost_rows": self.lost_rows,
            "targets": dict(self.targets()),
        }


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_options(argv: Sequence[str] | None) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="python -m player_sessions_local.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="events to generate and load (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 events, 1 s per route")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default bench-results/DATE)")
    parser.add_argument("--seconds", type=float, default=None, help="per route (default 10; 1 with --quick)")
    parser.add_argument("--single-client-seconds", type=float, default=None,
                        help="per route, one client at a time, after the concurrent pass (default 5; 0.5 with "
                             "--quick; 0 skips it)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent clients per route, each with its own gateway process")
    parser.add_argument("--http-events", type=int, default=None,
                        help="the file's first events posted through HTTP (default 100,000; 2,000 with --quick)")
    parser.add_argument("--http-clients", type=int, default=4,
                        help="concurrent clients posting batches, each with its own gateway process")
    parser.add_argument("--processes", type=int, default=2, help="loader and bare-loop processes")
    parser.add_argument("--chunks-in-flight", type=int, default=CHUNKS_IN_FLIGHT_PER_PROCESS,
                        help="chunks each loader process ingests at once")
    parser.add_argument("--keyspace", default="player_sessions_bench",
                        help="the loaded keyspace; the bare loop and HTTP ingest use it with _bare and _http")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=30, help="how many days the generated events span")
    parser.add_argument("--retention-days", type=int, default=None,
                        help="the service's retention in the bench keyspaces (default: its setting; 31 with --quick)")
    args = parser.parse_args(argv)
    events = args.events or (5_000 if args.quick else 1_000_000)
    out = args.out or Path("bench-results") / datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    http_events = args.http_events or (2_000 if args.quick else 100_000)
    return BenchOptions(events=events, out=out, retention_days=args.retention_days or (31 if args.quick else None),
                        seconds=args.seconds or (1.0 if args.quick else 10.0), clients=args.clients,
                        single_seconds=(args.single_client_seconds if args.single_client_seconds is not None
                                        else 0.5 if args.quick else 5.0),
                        http_events=min(http_events, events), http_clients=args.http_clients,
                        processes=args.processes, chunks_in_flight=args.chunks_in_flight, keyspace=args.keyspace,
                        redis_db=args.redis_db, seed=args.seed, days=args.days, quick=args.quick)


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_options(argv))


if __name__ == "__main__":
    raise SystemExit(main())
