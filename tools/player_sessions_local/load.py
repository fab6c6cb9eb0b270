"""Loads session events from the assignment's format (JSON lines, plain, .gz or .bz2) through the same domain
path as POST /events, concurrently, with a progress bar.

    python -m player_sessions_local.load events.jsonl.bz2 [--rebase-to-now] [--rejects rejects.jsonl]

- ``--rebase-to-now`` shifts every timestamp by one offset so that the newest event is now (the sample data
  is from 2016 and would otherwise be discarded as older than the retention); it reads the file twice.
- Every line that is not stored (not JSON, rejected, or discarded) goes to the rejects file with its line
  number and the reason.
- Re-running it is safe: every write is idempotent, so a line stored twice is stored once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from player_sessions.bootstrap import Services, build_services
from player_sessions.clock import Clock, SystemClock
from player_sessions.domain.ingest import ingest_batch
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import to_utc_millis
from player_sessions.observability import metrics
from player_sessions.settings import Settings, get_settings
from player_sessions_local.cassandra_roles import as_admin
from player_sessions_local.event_files import newest_timestamp, open_for_reading
from player_sessions_local.no_metrics import disable_service_metrics
from player_sessions_local.rollup_runner import fold_until_caught_up

T = TypeVar("T")

CHUNK_EVENTS = 100
"""Events per ingest call: big enough to keep many writes in flight, small enough to retry cheaply."""
REORDER_WINDOW = 50_000
"""Lines regrouped at a time: a session's start and end side by side, sessions in time order. Writes commute,
so the order changes nothing stored; it lets a chunk complete its sessions without reading them back. Measured
on the generator's data (30 days), per 100 events: 5,000 lines gave 9.3 read-backs; 50,000 lines (about 25 MB)
give 5.4."""
WORKERS = 6
CHUNKS_IN_FLIGHT_PER_PROCESS = 3
"""Chunks a worker process ingests at once, each on its own thread. One chunk alone leaves the connection idle
between its dependent steps (write, read back, complete and arrivals, invalidate) and sends each step's few
statements in a burst; overlapping chunks keeps writes flowing as the bare loop's steady 32 in flight do."""
CHUNK_ATTEMPTS = 3
"""A chunk that met a database failure (a timeout on a busy node) is sent again, as a client re-sends a batch
after a 503: every write is idempotent. Each re-send is counted in the report."""
RETRY_PAUSE_SECONDS = 0.5


@dataclass
class LoadReport:
    lines: int = 0
    """Lines read from the file, each one event."""
    stored: int = 0
    discarded: int = 0
    """Valid events older than the retention: accepted and not stored, as the API does."""
    rejected: int = 0
    """Lines the API would answer with an error (not JSON, a field against its rule)."""
    retries: int = 0
    """Chunks sent again after a database failure (see CHUNK_ATTEMPTS)."""
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def numbered_events(
    path: Path, shift: timedelta | None, rejects: queue.Queue
) -> Iterator[tuple[int, object]]:
    with open_for_reading(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as error:
                rejects.put(
                    {
                        "line": number,
                        "status": "rejected",
                        "reason": f"not JSON: {error}",
                        "raw": line.strip(),
                    }
                )
                continue
            if shift is not None and isinstance(event, dict) and isinstance(event.get("ts"), str):
                # A timestamp that does not parse (or leaves the calendar) is left as it is: the domain rejects it
                # with the precise reason.
                with contextlib.suppress(ValueError, OverflowError):
                    event["ts"] = (to_utc_millis(datetime.fromisoformat(event["ts"])) + shift).isoformat()
            yield number, event


def regrouped(
    items: Iterator[tuple[int, object]], window: int = REORDER_WINDOW
) -> Iterator[tuple[int, object]]:
    """The same items, each window of them regrouped by session and ordered by time."""
    buffer: list[tuple[int, object]] = []
    for item in items:
        buffer.append(item)
        if len(buffer) == window:
            yield from _by_session_in_time_order(buffer)
            buffer = []
    yield from _by_session_in_time_order(buffer)


def _by_session_in_time_order(items: list[tuple[int, object]]) -> list[tuple[int, object]]:
    sessions: dict[object, list[tuple[int, object]]] = {}
    for number, event in items:
        key = event.get("session_id") if isinstance(event, dict) else None
        sessions.setdefault(key if isinstance(key, str) else number, []).append((number, event))
    return [item for group in sorted(sessions.values(), key=_earliest_ts) for item in group]


def _earliest_ts(group: list[tuple[int, object]]) -> str:
    stamps = [
        event["ts"] for _, event in group if isinstance(event, dict) and isinstance(event.get("ts"), str)
    ]
    return min(stamps, default="")


@dataclass
class _WorkerProcess:
    """What a worker process builds once, when it starts, and its chunks share."""

    services: Services | None = None
    threads: ThreadPoolExecutor | None = None


_worker_process = _WorkerProcess()


def _start_worker_process(settings: Settings, clock: Clock, chunks_at_once: int) -> None:
    disable_service_metrics()  # a worker is no Lambda invocation: no EMF blob between the progress lines
    # The caller's settings and clock, not the environment's: the benchmark loads into a keyspace of its own.
    _worker_process.services = build_services(settings, clock)
    _worker_process.threads = ThreadPoolExecutor(chunks_at_once, thread_name_prefix="chunk")


ChunkResult = tuple[int, int, int, int, list, int]
"""How many lines the chunk had, and of its events stored, discarded and rejected; the problems; the re-sends.
(Not the chunk itself: a worker process would pickle it back for nothing.)"""


def _ingest_in_worker_process(
    chunks: list[list[tuple[int, object]]],
) -> tuple[list[ChunkResult], BaseException | None]:
    """The results of the chunks that were stored, and the first failure if one chunk could not be: a chunk
    stored next to a failed one is still reported."""
    services, threads = _worker_process.services, _worker_process.threads
    assert services is not None and threads is not None
    futures = [threads.submit(_ingest_chunk, chunk, services) for chunk in chunks]
    results: list[ChunkResult] = []
    failure: BaseException | None = None
    for future in futures:
        try:
            results.append(future.result())
        except Exception as error:  # reported to the parent, which stops the load
            failure = failure or error
    return results, failure


def _ingest_chunk(chunk: list[tuple[int, object]], services: Services) -> ChunkResult:
    numbers, events = zip(*chunk, strict=True)
    retries = 0
    while True:
        try:
            outcome = ingest_batch(
                list(events),
                store=services.sessions,
                clock=services.clock,
                settings=services.settings,
                cache=services.cache,
            )
            break
        except DatabaseUnavailableError:
            retries += 1
            if retries == CHUNK_ATTEMPTS:
                raise
            time.sleep(RETRY_PAUSE_SECONDS * retries)
    metrics.clear_metrics()  # a loader is no Lambda invocation: its metrics are never printed (load_file)
    problems = [
        {"line": numbers[p.index], "status": p.status, "reason": p.reason, "raw": json.dumps(events[p.index])}
        for p in outcome.problems
    ]
    return len(chunk), outcome.stored, outcome.discarded, outcome.rejected, problems, retries


def load_file(
    path: Path,
    services: Services,
    *,
    rebase_to_now: bool,
    rejects_path: Path | None,
    workers: int = WORKERS,
    progress: bool = True,
    processes: int = 1,
    chunks_in_flight: int = CHUNKS_IN_FLIGHT_PER_PROCESS,
) -> LoadReport:
    # The store records Lambda metrics, printed as EMF blobs; a loader is no Lambda (nor are its workers, which
    # also record nothing: _start_worker_process).
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    shift = None
    if rebase_to_now:
        newest = newest_timestamp(path)
        if newest is not None:
            shift = services.clock.now() - newest
    report = LoadReport()
    rejects: queue.Queue = queue.Queue()
    chunks: queue.Queue = queue.Queue(maxsize=workers * 4)
    bar = tqdm(unit="ev", unit_scale=True, disable=not progress, smoothing=0.1, mininterval=0.5)
    failures: list[BaseException] = []

    def record(result) -> None:
        lines, stored, discarded, rejected, problems, retries = result
        for problem in problems:
            rejects.put(problem)
        with report.lock:
            report.lines += lines
            report.stored += stored
            report.discarded += discarded
            report.rejected += rejected
            report.retries += retries
            bar.update(lines)
            bar.set_postfix(
                stored=report.stored, discarded=report.discarded, rejected=report.rejected, refresh=False
            )

    def work() -> None:
        while (chunk := chunks.get()) is not None:
            try:
                record(_ingest_chunk(chunk, services))
            except BaseException as error:
                failures.append(error)
                return

    started = time.perf_counter()
    if processes > 1:
        # Several processes, each with its own driver session: the driver's Python work is what limits one process.
        context = multiprocessing.get_context("fork")
        # Each task is a few chunks, ingested at once by the process's threads (CHUNKS_IN_FLIGHT_PER_PROCESS).
        with context.Pool(
            processes,
            initializer=_start_worker_process,
            initargs=(services.settings, services.clock, chunks_in_flight),
        ) as pool:
            tasks = _grouped(_chunked(regrouped(numbered_events(path, shift, rejects))), chunks_in_flight)
            for results, failure in pool.imap_unordered(_ingest_in_worker_process, tasks, chunksize=1):
                for result in results:
                    record(result)
                if failure is not None:
                    failures.append(failure)
                    break
        return _finish(report, bar, started, rejects=rejects, rejects_path=rejects_path, failures=failures)
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for chunk in _chunked(regrouped(numbered_events(path, shift, rejects))):
        chunks.put(chunk)
        if failures:
            break
    for _ in threads:
        chunks.put(None)
    for thread in threads:
        thread.join()
    return _finish(report, bar, started, rejects=rejects, rejects_path=rejects_path, failures=failures)


def _chunked(items: Iterator[tuple[int, object]]) -> Iterator[list[tuple[int, object]]]:
    return _grouped(items, CHUNK_EVENTS)


def _grouped(items: Iterator[T], size: int) -> Iterator[list[T]]:
    group: list[T] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _finish(
    report: LoadReport,
    bar: tqdm,
    started: float,
    *,
    rejects: queue.Queue,
    rejects_path: Path | None,
    failures: list[BaseException],
) -> LoadReport:
    bar.close()
    report.seconds = time.perf_counter() - started
    unparsed = _write_rejects(rejects, rejects_path)
    report.lines += unparsed
    report.rejected += unparsed
    if failures:
        raise failures[0]
    return report


def _write_rejects(rejects: queue.Queue, path: Path | None) -> int:
    """Writes every reject (sorted by line) and returns how many lines were not JSON at all."""
    items = []
    while not rejects.empty():
        items.append(rejects.get())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for item in sorted(items, key=lambda item: item["line"]):
                out.write(json.dumps(item) + "\n")
    return sum(1 for item in items if item["reason"].startswith("not JSON"))


def build_rollups(services: Services) -> float:
    """Folds every arrival of the load into the rollups, as the scheduled builder does while a service runs,
    so that the first reads after a bulk load find a short tail. Returns the seconds it took."""
    started = time.perf_counter()
    fold_until_caught_up(services)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--rebase-to-now", action="store_true")
    parser.add_argument("--rejects", type=Path, default=Path(".local/load-rejects.jsonl"))
    parser.add_argument("--workers", type=int, default=WORKERS, help="threads, in a single process")
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes (each with its own driver)"
    )
    parser.add_argument(
        "--chunks-in-flight",
        type=int,
        default=CHUNKS_IN_FLIGHT_PER_PROCESS,
        help=f"chunks of {CHUNK_EVENTS} events each worker process ingests at once (with --processes)",
    )
    parser.add_argument(
        "--no-rollups",
        action="store_true",
        help="skip folding the arrivals after the load (a running builder folds them)",
    )
    args = parser.parse_args(argv)
    disable_service_metrics()
    # A loader writes as the administrative role (set-up, not a function of the service).
    services = build_services(as_admin(get_settings()), SystemClock())
    report = load_file(
        args.path,
        services,
        rebase_to_now=args.rebase_to_now,
        rejects_path=args.rejects,
        workers=args.workers,
        processes=args.processes,
        chunks_in_flight=args.chunks_in_flight,
    )
    print(
        f"{report.lines} lines in {report.seconds:.1f} s ({report.events_per_second:,.0f} events/s): "
        f"{report.stored} stored, {report.discarded} discarded, {report.rejected} rejected, "
        f"{report.retries} chunks re-sent after a database failure; "
        f"rejects in {args.rejects}",
        file=sys.stderr,
    )
    if not args.no_rollups:
        print(f"arrivals folded into the rollups in {build_rollups(services):.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
