"""A pool of execution environments, as Lambda runs a function behind API Gateway: each environment serves one
invocation at a time; a request finds a warm idle environment of its function or starts one, up to a maximum
concurrency (invocations in flight, across functions, like an account's concurrency); idle environments stay
warm and are retired after an idle timeout; one that crashed or timed out is discarded, and the next request
starts a fresh one.

Beyond the maximum a request waits at most ``start_wait_seconds`` for an environment to free, then is refused
(throttled, as Lambda refuses an invocation past a function's concurrency; the gateway answers 429), so the
requests within capacity keep their latency instead of queueing behind a backlog. The short wait stands for
the cold start a deployed function would give that request instead: the API functions reserve no
concurrency, so Lambda starts another environment where this machine's cores set the maximum.
``wait_timeout_seconds`` lets a request wait longer instead (then 504), for experiments only
(docs/decisions.md).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from player_sessions_local.gateway.environments import ExecutionEnvironment, LocalFunction
from player_sessions_local.gateway.invocation import Invocation, Outcome

DEFAULT_MAX_CONCURRENCY = 2 * (os.cpu_count() or 1)
"""Twice the cores: an invocation spends part of its time waiting for Cassandra, so two per core keep the
cores busy; more only queue for them (docs/benchmarks.md)."""
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_START_WAIT_SECONDS = 0.05
"""How long a request finding every environment busy waits for one before it is refused: less than a deployed
cold start (about 0.3 s here, INIT REPORT), and short enough that a refusal still comes within 100 ms."""
INTEGRATION_TIMEOUT_SECONDS = 29.0
"""API Gateway's integration timeout: the longest a request could wait for a free environment, if waiting."""
_LOGGER = logging.getLogger(__name__)

StartEnvironment = Callable[..., Any]


@dataclass(frozen=True)
class PoolState:
    started: dict[str, int]
    """Environments started since the pool was created, per function."""
    idle: dict[str, int]
    busy: int
    """Invocations in flight (environments starting for one included)."""
    waiting: int
    """Requests waiting for a free slot."""
    peak_busy: int


class _NoEnvironmentError(Exception):
    pass


class _ThrottledError(_NoEnvironmentError):
    pass


class EnvironmentPool:
    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        *,
        region: str,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS,
        wait_timeout_seconds: float = 0.0,
        start_wait_seconds: float = DEFAULT_START_WAIT_SECONDS,
        start_environment: StartEnvironment = ExecutionEnvironment.start,
        clock: Callable[[], float] = time.monotonic,
        retire_in_background: bool = True,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.functions = dict(functions)
        self.max_concurrency = max_concurrency
        self.idle_timeout_seconds = idle_timeout_seconds
        self._region = region
        self._wait_timeout = wait_timeout_seconds
        self._start_wait = start_wait_seconds
        self._start_environment = start_environment
        self._clock = clock
        self._condition = threading.Condition()
        self._idle: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        """Per function, (idle since, environment), the most recently used last."""
        self._live: set[Any] = set()
        self._started: Counter[str] = Counter()
        self._numbers = itertools.count(1)
        self._busy = self._waiting = self._peak_busy = 0
        self._closed = False
        # Every emulator is started from this one long-lived thread: each dies with the thread that started it
        # (PR_SET_PDEATHSIG), so none outlives the gateway, not even a gateway killed with SIGKILL.
        self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="environment-launcher")
        self._retirer: threading.Thread | None = None
        if retire_in_background:
            self._retirer = threading.Thread(
                target=self._retire_until_closed, name="environment-retirer", daemon=True
            )
            self._retirer.start()

    # --- Invocations -------------------------------------------------------------------------------------

    def invoke(
        self, function_name: str, event: dict[str, Any], *, request_id: str, trace_id: str | None = None
    ) -> Invocation:
        try:
            environment = self._acquire(function_name)
        except _ThrottledError as error:
            return Invocation(Outcome.THROTTLED, detail=str(error))
        except _NoEnvironmentError as error:
            return Invocation(Outcome.NOT_STARTED, detail=str(error))
        except Exception as error:
            _LOGGER.exception("could not start an environment for %s", function_name)
            return Invocation(Outcome.CRASHED, detail=f"could not start an environment: {error}")
        reusable = False
        try:
            invocation = environment.invoke(event, request_id=request_id, trace_id=trace_id)
            reusable = invocation.outcome in (Outcome.RETURNED, Outcome.FUNCTION_ERROR) and environment.alive
            return invocation
        finally:
            self._release(environment, reusable=reusable)

    def _acquire(self, function_name: str) -> Any:
        function = self.functions[function_name]
        queues = self._wait_timeout > 0
        deadline = self._clock() + (self._wait_timeout if queues else self._start_wait)
        with self._condition:
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise _NoEnvironmentError("the gateway is stopping")
                    if self._busy < self.max_concurrency:
                        self._busy += 1
                        self._peak_busy = max(self._peak_busy, self._busy)
                        idle = self._idle[function_name]
                        if idle:
                            return idle.pop()[1]
                        number = next(self._numbers)
                        break
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        if queues:
                            raise _NoEnvironmentError(
                                f"all {self.max_concurrency} environments busy for {self._wait_timeout:g} s"
                            )
                        raise _ThrottledError(
                            f"all {self.max_concurrency} environments busy for {self._start_wait * 1000:g} ms"
                        )
                    self._condition.wait(remaining)
            finally:
                self._waiting -= 1
        try:
            environment = self._launcher.submit(
                self._start_environment, function, number, region=self._region
            ).result()
        except BaseException:
            with self._condition:
                self._busy -= 1
                self._condition.notify_all()
            raise
        with self._condition:
            self._started[function_name] += 1
            self._live.add(environment)
        _LOGGER.info("started %s: a cold start", environment)
        return environment

    def _release(self, environment: Any, *, reusable: bool) -> None:
        with self._condition:
            self._busy -= 1
            keep = reusable and not self._closed
            if keep:
                self._idle[environment.function.name].append((self._clock(), environment))
            else:
                self._live.discard(environment)
            self._condition.notify_all()
        if not keep:
            _LOGGER.warning(
                "discarding %s; the next request for %s starts a fresh environment",
                environment,
                environment.function.name,
            )
            threading.Thread(target=environment.stop, name=f"stop-{environment.label}", daemon=True).start()

    # --- Idle environments -------------------------------------------------------------------------------

    def retire_idle(self, now: float | None = None) -> list[Any]:
        """Stops every environment idle for the idle timeout or longer; returns them."""
        now = self._clock() if now is None else now
        retired = []
        with self._condition:
            for name, entries in self._idle.items():
                keep = [(since, env) for since, env in entries if now - since < self.idle_timeout_seconds]
                retired += [env for since, env in entries if now - since >= self.idle_timeout_seconds]
                self._idle[name] = keep
            self._live.difference_update(retired)
        for environment in retired:
            _LOGGER.info("retiring %s: idle for %g s or more", environment, self.idle_timeout_seconds)
            environment.stop()
        return retired

    def _retire_until_closed(self) -> None:
        interval = max(0.05, min(self.idle_timeout_seconds / 4, 5.0))
        while True:
            with self._condition:
                if self._closed:
                    return
                self._condition.wait(interval)
                if self._closed:
                    return
            self.retire_idle()

    # --- State and shutdown ------------------------------------------------------------------------------

    def state(self) -> PoolState:
        with self._condition:
            return PoolState(
                started=dict(self._started),
                idle={name: len(entries) for name, entries in self._idle.items() if entries},
                busy=self._busy,
                waiting=self._waiting,
                peak_busy=self._peak_busy,
            )

    def live_environments(self) -> list[Any]:
        with self._condition:
            return sorted(self._live, key=lambda environment: environment.number)

    def close(self) -> None:
        """Stops every environment, idle or busy (a busy one's request gets API Gateway's 502)."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            environments = list(self._live)
            self._live.clear()
            self._idle.clear()
            self._condition.notify_all()
        for environment in environments:
            environment.stop()
        self._launcher.shutdown(wait=True)
        if self._retirer is not None:
            self._retirer.join(timeout=10)
