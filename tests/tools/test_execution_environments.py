"""The local gateway's pool of execution environments, with real ones: each an aws-lambda-rie process running
a probe function through awslambdaric. No Cassandra or Redis is involved; tests count environments and
processes, never time."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from infra_cdk.function_definitions import FUNCTION_DEFINITIONS
from player_sessions.routes import Caller, LambdaFunction, Route
from player_sessions.settings import Settings
from player_sessions_local.gateway import create_server
from player_sessions_local.gateway.invocation import Outcome
from player_sessions_local.gateway.local_functions import LocalFunction
from player_sessions_local.gateway.pool import EnvironmentPool
from player_sessions_local.lambda_bootstrap import SERVING_MARKER
from tests.sockets import serve_connections

pytestmark = pytest.mark.e2e

PROBE_DIR = Path(__file__).parent / "probe_function"
PROBE = LambdaFunction("probe", "a probe function")
ROUTES = (Route("POST", "/probe", PROBE, Caller.STUDIO),)
WAIT_SECONDS = 60


def probe_function(**changes) -> LocalFunction:
    function = LocalFunction(
        name="probe",
        handler="handler.lambda_handler",
        code_dir=PROBE_DIR,
        memory_mb=512,
        timeout_seconds=10,
        snap_start=True,
        environment={},
    )
    return dataclasses.replace(function, **changes)


@dataclasses.dataclass
class ProbeGateway:
    client: httpx.Client
    pool: EnvironmentPool

    def post(self, order: dict) -> httpx.Response:
        return self.client.post("/probe", json=order)


@contextmanager
def probe_gateway(
    function: LocalFunction | None = None, max_concurrency: int = 4, queue_seconds: float = 0.0
) -> Iterator[ProbeGateway]:
    """The gateway in a thread, in front of a pool of real environments running the probe."""
    pool = EnvironmentPool(
        {"probe": function or probe_function()},
        region="us-east-1",
        max_concurrency=max_concurrency,
        wait_timeout_seconds=queue_seconds,
    )
    server = create_server("127.0.0.1", 0, routes=ROUTES, invoker=pool)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=WAIT_SECONDS) as client:
            yield ProbeGateway(client, pool)
    finally:
        server.shutdown()
        server.server_close()  # closes the pool: every environment is stopped
        thread.join()


class Barrier:
    """Holds each probe invocation that connects until released: while held, all are in flight at once."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.arrived: list[str] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        serve_connections(self._server, self._hold, name="barrier")

    def _hold(self, connection: socket.socket) -> None:
        arrived = connection.makefile("rb").readline().decode().strip()
        with self._lock:
            self.arrived.append(arrived)
            self._held.append(connection)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.arrived) < count:
            assert time.monotonic() < deadline, f"only {self.arrived} reached the barrier"
            time.sleep(0.01)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            connection.sendall(b"go")
            connection.close()

    def close(self) -> None:
        self.release()
        self._server.close()


@pytest.fixture
def barrier() -> Iterator[Barrier]:
    held = Barrier()
    yield held
    held.close()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def body(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_two_concurrent_requests_run_in_two_environments_and_each_sees_only_its_own_event(barrier):
    with probe_gateway() as gateway, ThreadPoolExecutor(2) as clients:
        # Given two requests in flight at once (both held at the barrier until both have arrived)
        first = clients.submit(gateway.post, {"id": "first", "hold_at": barrier.port})
        second = clients.submit(gateway.post, {"id": "second", "hold_at": barrier.port})
        barrier.wait_for(2)
        # When both are released
        barrier.release()
        answers = [body(first.result()), body(second.result())]
        state = gateway.pool.state()
    # Then two environments ran them, in two processes, and each got its own event and request id
    assert sorted(barrier.arrived) == ["first", "second"]
    assert [answer["order"]["id"] for answer in answers] == ["first", "second"]
    assert answers[0]["pid"] != answers[1]["pid"]
    assert answers[0]["request_id"] != answers[1]["request_id"]
    assert state.started == {"probe": 2} and state.peak_busy == 2


def test_a_warm_environment_is_reused_for_the_next_request():
    with probe_gateway() as gateway:
        # When two requests come one after the other
        first, second = body(gateway.post({"id": 1})), body(gateway.post({"id": 2}))
        state = gateway.pool.state()
    # Then the second ran in the first one's environment
    assert first["pid"] == second["pid"]
    assert state.started == {"probe": 1} and state.idle == {"probe": 1}


def test_max_concurrency_is_enforced_and_the_request_beyond_it_is_throttled(barrier):
    with probe_gateway(max_concurrency=2) as gateway, ThreadPoolExecutor(2) as clients:
        # Given two requests holding both environments the pool may run
        held = [clients.submit(gateway.post, {"id": n, "hold_at": barrier.port}) for n in ("a", "b")]
        barrier.wait_for(2)
        # When a third comes
        third = gateway.post({"id": "c"})
        state = gateway.pool.state()
        barrier.release()
        answers = [body(future.result()) for future in held]
    # Then, neither freeing within the start wait, it is refused as Lambda throttles (429, Retry-After) while the
    # two are still held, and no third environment starts
    assert third.status_code == 429 and third.headers["retry-after"] == "1"
    assert third.json() == {"message": "Too Many Requests", "errors": []}
    assert state.busy == 2 and state.waiting == 0
    assert [answer["order"]["id"] for answer in answers] == ["a", "b"]
    assert state.started == {"probe": 2}


def test_with_a_queue_the_request_beyond_max_concurrency_waits_for_a_free_environment(barrier):
    with probe_gateway(max_concurrency=2, queue_seconds=30) as gateway, ThreadPoolExecutor(3) as clients:
        # Given two requests holding both environments the pool may run
        held = [clients.submit(gateway.post, {"id": n, "hold_at": barrier.port}) for n in ("a", "b")]
        barrier.wait_for(2)
        # When a third comes
        third = clients.submit(gateway.post, {"id": "c"})
        wait_until(lambda: gateway.pool.state().waiting == 1, "the third request waits")
        # Then it waits, no third environment starts, and once one is free it runs there
        waiting = gateway.pool.state()
        barrier.release()
        answers = [body(future.result()) for future in (*held, third)]
        state = gateway.pool.state()
    assert (waiting.busy, waiting.waiting, waiting.started) == (2, 1, {"probe": 2})
    assert [answer["order"]["id"] for answer in answers] == ["a", "b", "c"]
    assert answers[2]["pid"] in {answers[0]["pid"], answers[1]["pid"]}
    assert state.started == {"probe": 2} and state.peak_busy == 2


def test_an_environment_whose_runtime_exits_is_replaced_and_its_request_gets_api_gateways_502():
    with probe_gateway() as gateway:
        # Given a warm environment
        before = body(gateway.post({"id": "before"}))
        # When its runtime exits in the middle of an invocation
        crashed = gateway.post({"exit": 3})
        after = body(gateway.post({"id": "after"}))
        state = gateway.pool.state()
    # Then that request gets API Gateway's 502, and the next one runs in a fresh environment
    assert crashed.status_code == 502
    assert crashed.json() == {"message": "Internal server error", "errors": []}
    assert crashed.headers["x-amzn-errortype"] == "InternalServerErrorException"
    assert after["pid"] != before["pid"]
    assert state.started == {"probe": 2}


def test_a_timed_out_environment_is_replaced_and_its_request_gets_api_gateways_502(barrier):
    with probe_gateway(probe_function(timeout_seconds=2)) as gateway:
        # Given a warm environment of a function with a 2 s timeout
        before = body(gateway.post({"id": "before"}))
        # When an invocation runs past it (held at a barrier that is never released)
        timed_out = gateway.post({"id": "stuck", "hold_at": barrier.port})
        after = body(gateway.post({"id": "after"}))
        state = gateway.pool.state()
    # Then that request gets API Gateway's 502, and the next one runs in a fresh environment
    assert barrier.arrived == ["stuck"]
    assert timed_out.status_code == 502
    assert timed_out.json() == {"message": "Internal server error", "errors": []}
    assert after["pid"] != before["pid"]
    assert state.started == {"probe": 2}


def test_init_has_time_of_its_own_and_the_handler_the_functions_whole_timeout(barrier):
    # Given a function with a 2 s timeout whose init takes 3 s
    function = probe_function(timeout_seconds=2, environment={"PROBE_INIT_SECONDS": "3"})
    pool = EnvironmentPool({"probe": function}, region="us-east-1", max_concurrency=1)
    try:
        # When it cold-starts, then a warm invocation runs past the timeout
        cold = pool.invoke("probe", {"body": "{}"}, request_id="cold")
        stuck = pool.invoke("probe", {"body": json.dumps({"hold_at": barrier.port})}, request_id="stuck")
    finally:
        pool.close()
    # Then the cold one is served (Lambda gives init its own time; the emulator alone would have timed it out
    # during init) and its handler sees the function's timeout, counted from the end of init
    assert cold.outcome is Outcome.RETURNED
    answer = json.loads(cold.result["body"])
    assert answer["environment"]["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "2"
    assert 0 < answer["remaining_ms"] <= 2_000
    assert "PLAYER_SESSIONS_LOCAL_FUNCTION_TIMEOUT" not in answer["environment"]
    # And the warm one is ended at the function's 2 s, not at the emulator's longer backstop
    assert stuck.outcome is Outcome.TIMED_OUT
    assert stuck.detail == "Task timed out after 2.00 seconds"


def test_a_cold_start_reports_an_init_duration_and_a_warm_invocation_none():
    pool = EnvironmentPool({"probe": probe_function()}, region="us-east-1", max_concurrency=1)
    try:
        # When the same environment serves two invocations
        cold = pool.invoke("probe", {"body": "{}"}, request_id="cold-request")
        warm = pool.invoke("probe", {"body": "{}"}, request_id="warm-request")
    finally:
        pool.close()
    # Then the emulator's REPORT of the first has an Init Duration, the second's has none
    assert cold.environment == warm.environment
    assert cold.report is not None and warm.report is not None
    assert (cold.report.request_id, warm.report.request_id) == ("cold-request", "warm-request")
    assert cold.report.init_duration_ms is not None and cold.report.init_duration_ms > 0
    assert warm.report.init_duration_ms is None
    assert cold.report.memory_size_mb == warm.report.memory_size_mb == 512
    assert cold.report.billed_duration_ms >= cold.report.duration_ms > 0
    assert cold.report.peak_rss_mb is not None and cold.report.peak_rss_mb > 0


def test_snapstart_hooks_run_in_aws_order_and_the_restored_process_serves(tmp_path):
    # Given a probe that records its phases and the process of each
    phases_file = tmp_path / "phases"
    function = probe_function(environment={"PROBE_PHASES": str(phases_file)})
    with probe_gateway(function) as gateway:
        # When an environment starts and serves two invocations
        first, second = body(gateway.post({"id": 1})), body(gateway.post({"id": 2}))
    # Then: init, the before-snapshot hook, and (in the restored copy of that process) the after-restore hook,
    # then the invocations
    phases = [line.split() for line in phases_file.read_text().splitlines()]
    assert [phase for phase, _ in phases] == ["init", "before_snapshot", "after_restore", "invoke", "invoke"]
    snapshot_pid, restored_pid = phases[0][1], phases[2][1]
    assert phases[1][1] == snapshot_pid != restored_pid
    assert phases[3][1] == phases[4][1] == restored_pid == str(first["pid"]) == str(second["pid"])


def test_idle_environments_are_retired_after_the_idle_timeout_and_the_next_request_starts_a_fresh_one():
    now = [1000.0]
    pool = EnvironmentPool(
        {"probe": probe_function()},
        region="us-east-1",
        idle_timeout_seconds=60,
        clock=lambda: now[0],
        retire_in_background=False,
    )
    try:
        # Given a warm environment
        first = pool.invoke("probe", {"body": "{}"}, request_id="one")
        (environment,) = pool.live_environments()
        # When it stays idle for less than the timeout, then for the timeout
        kept = pool.retire_idle(now=now[0] + 59)
        retired = pool.retire_idle(now=now[0] + 60)
        second = pool.invoke("probe", {"body": "{}"}, request_id="two")
    finally:
        pool.close()
    # Then it is kept, then stopped (its process is gone), and the next request cold-starts another
    assert kept == [] and retired == [environment]
    assert environment.process.poll() is not None
    assert first.environment != second.environment
    assert second.report is not None and second.report.init_duration_ms is not None
    assert pool.state().started == {"probe": 2}


def test_the_environment_runs_the_deployed_definitions_handler_limits_and_environment():
    # Given the ingest function as it is deployed, with the probe's code in place of its own
    settings = Settings(keyspace="player_sessions_probe", redis_url="redis://127.0.0.1:1/0")
    deployed = LocalFunction.deployed_as(FUNCTION_DEFINITIONS["ingest_events"], settings, overrides={})
    with probe_gateway(dataclasses.replace(deployed, name="probe", code_dir=PROBE_DIR)) as gateway:
        # When it is invoked
        answer = body(gateway.post({"id": 1}))
    # Then it got the definition's handler string, memory, timeout and environment, pointed at local services
    environment = answer["environment"]
    handler = FUNCTION_DEFINITIONS["ingest_events"].handler
    assert environment["_HANDLER"] == handler == "handler.lambda_handler"
    # (awslambdaric's context carries the memory as the runtime's environment gives it: a string)
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024" == answer["memory_limit_in_mb"]
    assert environment["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "10" and 0 < answer["remaining_ms"] <= 10_000
    assert environment["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
    assert environment["LAMBDA_TASK_ROOT"] == str(PROBE_DIR)
    assert environment["POWERTOOLS_SERVICE_NAME"] == "player-sessions"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "PlayerSessions"
    assert environment["PLAYER_SESSIONS_RETENTION_DAYS"] == "365"
    assert environment["PLAYER_SESSIONS_DATABASE_MODE"] == "local"
    assert environment["PLAYER_SESSIONS_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert "PLAYER_SESSIONS_CURSOR_SECRET_ARN" not in environment
    assert answer["path"] == "/probe"


def test_the_emulators_report_lines_reach_the_gateways_log(caplog):
    caplog.set_level("INFO", logger="player_sessions_local.lambda")
    with probe_gateway() as gateway:
        # When an environment cold-starts and serves a second request warm
        body(gateway.post({"id": 1}))
        body(gateway.post({"id": 2}))
    # Then the gateway's log holds both REPORT lines, the first with an Init Duration, and the serving pid
    reports = [r.getMessage() for r in caplog.records if " REPORT RequestId: " in r.getMessage()]
    assert len(reports) == 2
    assert all(m.startswith("probe#1 REPORT RequestId: ") for m in reports)
    assert all(f in m for m in reports for f in ("Duration: ", "Billed Duration: ", "Max Memory Used: "))
    assert "Init Duration: " in reports[0] and "Init Duration: " not in reports[1]
    assert any(SERVING_MARKER in r.getMessage() for r in caplog.records)
    assert any("INIT REPORT(durationMs: " in r.getMessage() for r in caplog.records)
