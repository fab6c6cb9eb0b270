"""The pool's scheduling, with stand-in environments (no processes): which environment a request gets, when
one starts, waits and API Gateway's answers when none can serve."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from player_sessions_local.gateway.answers import answer_invocation
from player_sessions_local.gateway.invocation import Invocation, Outcome
from player_sessions_local.gateway.local_functions import LocalFunction
from player_sessions_local.gateway.pool import DEFAULT_START_WAIT_SECONDS, EnvironmentPool

FUNCTIONS = {
    name: LocalFunction(
        name=name,
        handler="handler.lambda_handler",
        code_dir=Path("/nowhere"),
        memory_mb=128,
        timeout_seconds=3,
        snap_start=False,
        environment={},
    )
    for name in ("ingest", "read")
}
OK = {"statusCode": 200, "body": "{}"}


class StandInEnvironment:
    """Answers with what the test scripted for the next invocation; can be held until released."""

    def __init__(
        self, function: LocalFunction, number: int, script: list[Outcome], gate: threading.Event
    ) -> None:
        self.function, self.number, self.label = function, number, f"{function.name}#{number}"
        self.script, self.gate = script, gate
        self.alive, self.stopped = True, threading.Event()

    def invoke(self, event: dict[str, Any], *, request_id: str, trace_id: str | None = None) -> Invocation:
        self.gate.wait(10)
        outcome = self.script.pop(0) if self.script else Outcome.RETURNED
        return Invocation(outcome, result=OK if outcome is Outcome.RETURNED else None, environment=self.label)

    def stop(self) -> None:
        self.alive = False
        self.stopped.set()


class StandIns:
    def __init__(self) -> None:
        self.started: list[StandInEnvironment] = []
        self.script: list[Outcome] = []
        self.gate = threading.Event()
        self.gate.set()

    def start(self, function: LocalFunction, number: int, *, region: str) -> StandInEnvironment:
        environment = StandInEnvironment(function, number, self.script, self.gate)
        self.started.append(environment)
        return environment


def pool_with(stand_ins: StandIns, **options) -> EnvironmentPool:
    return EnvironmentPool(
        FUNCTIONS,
        region="us-east-1",
        start_environment=stand_ins.start,
        retire_in_background=False,
        **options,
    )


def invoke(pool: EnvironmentPool, function: str = "ingest") -> Invocation:
    return pool.invoke(function, {}, request_id="r")


def wait_until(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_an_idle_environment_of_the_function_is_reused_and_another_functions_is_not():
    # Given a pool that has served one ingest request
    stand_ins = StandIns()
    pool = pool_with(stand_ins)
    first = invoke(pool, "ingest")
    # When another ingest request and a read request come
    second = invoke(pool, "ingest")
    read = invoke(pool, "read")
    # Then the ingest environment is reused and the read function gets its own
    assert first.environment == second.environment == "ingest#1"
    assert read.environment == "read#2"
    assert pool.state().started == {"ingest": 1, "read": 1}


def pool_of_one_busy(**options) -> tuple[StandIns, EnvironmentPool, threading.Thread]:
    """A pool of one whose only environment is busy (held until ``stand_ins.gate`` is set) with an ingest
    invocation running on ``busy``."""
    stand_ins = StandIns()
    stand_ins.gate.clear()
    pool = pool_with(stand_ins, max_concurrency=1, **options)
    busy = threading.Thread(target=invoke, args=(pool,))
    busy.start()
    wait_until(lambda: pool.state().busy == 1)
    return stand_ins, pool, busy


def test_a_request_beyond_the_maximum_is_refused_after_the_short_start_wait_with_429_as_lambda_throttles():
    # Given a pool of one, whose only environment stays busy
    stand_ins, pool, busy = pool_of_one_busy()
    # When another request comes
    started = time.monotonic()
    refused = invoke(pool, "read")
    waited = time.monotonic() - started
    stand_ins.gate.set()
    busy.join()
    # Then it waited the start wait (no environment freed: the busy one is held until the refusal came back),
    # was refused, and API Gateway's throttle answer given
    assert refused.outcome is Outcome.THROTTLED
    assert waited >= DEFAULT_START_WAIT_SECONDS
    assert refused.detail == f"all 1 environments busy for {DEFAULT_START_WAIT_SECONDS * 1000:g} ms"
    response = answer_invocation("read", refused)
    assert (response.status, response.body) == (429, b'{"message": "Too Many Requests", "errors": []}')
    assert ("Retry-After", "1") in response.headers
    assert pool.state().started == {"ingest": 1}


def test_a_request_finding_every_environment_busy_is_served_by_one_that_frees_within_the_start_wait():
    # Given a pool of one whose only environment is busy, and a start wait long enough for it to finish
    stand_ins, pool, busy = pool_of_one_busy(start_wait_seconds=30.0)
    # When another request comes and the busy invocation then returns
    second: list[Invocation] = []
    waiting = threading.Thread(target=lambda: second.append(invoke(pool)))
    waiting.start()
    wait_until(lambda: pool.state().waiting == 1)
    stand_ins.gate.set()
    for thread in (busy, waiting):
        thread.join()
    # Then it ran in the environment that freed: not refused, no second environment started
    assert second[0].outcome is Outcome.RETURNED
    assert pool.state().started == {"ingest": 1}


def test_with_a_queue_a_request_beyond_the_maximum_waits_then_gets_api_gateways_504():
    # Given a pool of one that lets requests wait a moment (an experiment), its only environment busy
    stand_ins, pool, busy = pool_of_one_busy(wait_timeout_seconds=0.2)
    # When another request comes and no environment frees up in time
    refused = invoke(pool, "read")
    stand_ins.gate.set()
    busy.join()
    # Then it is not run anywhere, and API Gateway's integration timeout answer is given
    assert refused.outcome is Outcome.NOT_STARTED
    response = answer_invocation("read", refused)
    assert (response.status, response.body) == (
        504,
        b'{"message": "Endpoint request timed out", "errors": []}',
    )
    assert pool.state().started == {"ingest": 1}


def test_the_maximum_counts_invocations_in_flight_across_functions():
    # Given a pool of two, both busy with ingest
    stand_ins = StandIns()
    stand_ins.gate.clear()
    pool = pool_with(stand_ins, max_concurrency=2, wait_timeout_seconds=10)
    clients = [threading.Thread(target=invoke, args=(pool, name)) for name in ("ingest", "ingest", "read")]
    for client in clients[:2]:
        client.start()
    wait_until(lambda: pool.state().started == {"ingest": 2})
    # When a read request comes
    clients[2].start()
    wait_until(lambda: pool.state().waiting == 1)
    waiting = pool.state()
    stand_ins.gate.set()
    for client in clients:
        client.join()
    # Then it waits (no third environment while two run), and starts once one is free
    assert (waiting.busy, waiting.started) == (2, {"ingest": 2})
    assert pool.state().started == {"ingest": 2, "read": 1}
    assert pool.state().peak_busy == 2


def test_an_environment_that_crashed_or_timed_out_is_stopped_and_never_reused():
    # Given an environment whose next two invocations crash and time out
    stand_ins = StandIns()
    stand_ins.script += [Outcome.CRASHED, Outcome.TIMED_OUT]
    pool = pool_with(stand_ins)
    # When three requests come one after the other
    outcomes = [invoke(pool) for _ in range(3)]
    # Then each failure discarded its environment: three started, the first two stopped
    assert [o.outcome for o in outcomes] == [Outcome.CRASHED, Outcome.TIMED_OUT, Outcome.RETURNED]
    assert [o.environment for o in outcomes] == ["ingest#1", "ingest#2", "ingest#3"]
    assert all(environment.stopped.wait(5) for environment in stand_ins.started[:2])
    assert not stand_ins.started[2].stopped.is_set()
    assert [answer_invocation("ingest", o).status for o in outcomes] == [502, 502, 200]


def test_a_function_error_keeps_the_environment_and_answers_502():
    # Given an environment whose handler raises once
    stand_ins = StandIns()
    stand_ins.script.append(Outcome.FUNCTION_ERROR)
    pool = pool_with(stand_ins)
    # When two requests come
    failed, served = invoke(pool), invoke(pool)
    # Then the first is API Gateway's 502 and the same environment serves the second (the runtime lives on)
    assert answer_invocation("ingest", failed).status == 502
    assert failed.environment == served.environment == "ingest#1"


def test_an_environment_that_cannot_start_answers_502_and_frees_its_slot():
    # Given a pool of one whose environments cannot start
    def cannot_start(function, number, *, region):
        raise RuntimeError("no emulator")

    pool = EnvironmentPool(
        FUNCTIONS,
        region="us-east-1",
        max_concurrency=1,
        start_environment=cannot_start,
        retire_in_background=False,
    )
    # When two requests come
    outcomes = [invoke(pool), invoke(pool)]
    # Then both get API Gateway's 502 (neither waits for a slot the first one never gave back)
    assert [o.outcome for o in outcomes] == [Outcome.CRASHED, Outcome.CRASHED]
    assert "no emulator" in outcomes[0].detail
    assert pool.state().busy == 0


def test_closing_the_pool_stops_every_environment_and_refuses_new_requests():
    # Given two warm environments
    stand_ins = StandIns()
    pool = pool_with(stand_ins)
    invoke(pool, "ingest"), invoke(pool, "read")
    # When the pool is closed
    pool.close()
    # Then both are stopped and a late request is not run
    assert all(environment.stopped.is_set() for environment in stand_ins.started)
    assert invoke(pool).outcome is Outcome.NOT_STARTED
