"""Write throughput: the physical limit (a bare loop of prepared inserts) and HTTP ingest."""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from player_sessions.cassandra_cluster import build_cluster
from player_sessions.repositories.cassandra_store import WRITE_CONCURRENCY
from player_sessions.repositories.session_rows import WRITE_END_HALF, WRITE_START_HALF
from player_sessions.routes import STUDIO_EVENTS_PATH
from player_sessions.settings import Settings
from player_sessions_local.bench.cpu import CpuUse
from player_sessions_local.bench.dataset import Statement
from player_sessions_local.bench.environments import Environments, http_client
from player_sessions_local.bench.options import BARE_ATTEMPTS, BATCH_EVENTS

_bare_statements: list[Statement | list[Statement]] = []
"""Set before the worker processes fork; each one sends every ``processes``-th request."""


def as_requests(statements: list[Statement]) -> list[Statement | list[Statement]]:
    """The statements as the ingest path sends them: a session's start half and end half, when the events hold
    exactly one of each, go as one single-partition unlogged batch (see session_rows.event_statements);
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


def _bare_worker(settings: Settings, index: int, processes: int, *, ready, go, results) -> None:
    cluster = build_cluster(settings)
    session = cluster.connect(settings.keyspace)
    # Every statement the ingest path's writes use (the data set's, repositories.cassandra_store and
    # repositories.player_rows), prepared once.
    statements = {
        cql
        for request in _bare_statements
        for cql, _ in (request if isinstance(request, list) else [request])
    }
    prepared = {cql: session.prepare(cql.text) for cql in statements}
    # What execute_concurrent takes: a batch with no parameters, or a prepared statement with its own.
    work: list[tuple[BatchStatement | PreparedStatement, tuple[Any, ...] | None]] = []
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
        for statement, (success, result) in zip(
            work,
            execute_concurrent(
                session,
                work,
                concurrency=WRITE_CONCURRENCY,
                raise_on_first_error=False,
                results_generator=True,
            ),
            strict=True,
        ):
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
    _bare_statements[:] = as_requests(statements)
    context = multiprocessing.get_context("fork")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_bare_worker,
            args=(settings, i, processes),
            kwargs={"ready": ready, "go": go, "results": results},
        )
        for i in range(processes)
    ]
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
    _bare_statements.clear()
    written = sum(o[0] for o in outcomes)
    retried = sum(o[1] for o in outcomes)
    errors = sum(o[2] for o in outcomes)
    first_error = next((o[3] for o in outcomes if o[3]), "")
    return Throughput(
        "bare loop (prepared inserts)",
        events,
        seconds,
        errors,
        retried,
        f"{len(statements):,} statements in {written:,} requests (a session's two halves in one "
        f"single-partition batch, as the ingest path sends them), {processes} processes x "
        f"{WRITE_CONCURRENCY} in flight" + (f"; first failure: {first_error}" if first_error else ""),
    )


def run_http_ingest(environments: Environments, events: list[dict], clients: int) -> Throughput:
    """``clients`` clients post the events in file order, 10 a batch; every batch must be stored whole."""
    bodies = [json.dumps(events[i : i + BATCH_EVENTS]).encode() for i in range(0, len(events), BATCH_EVENTS)]
    sizes = [len(events[i : i + BATCH_EVENTS]) for i in range(0, len(events), BATCH_EVENTS)]
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
                        status, body = client.request("POST", STUDIO_EVENTS_PATH, bodies[index])
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
    return Throughput(
        "HTTP ingest (POST /events)",
        len(events),
        seconds,
        len(errors),
        len(resent),
        f"{len(bodies):,} batches of {BATCH_EVENTS}, {clients} clients, one gateway with up to "
        f"{environments.concurrency} execution environments"
        + (f"; first error: {errors[0]}" if errors else ""),
    )
