"""What the integration gets back from a function: an invocation's outcome, its result and its REPORT, and the
interface both ways of running functions (in this process, or in a pool of execution environments) offer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    RETURNED = "returned"
    """The handler returned; its result may still be something API Gateway cannot map."""
    FUNCTION_ERROR = "function error"
    """The handler raised (Lambda's ``Unhandled`` function error); the environment lives on."""
    TIMED_OUT = "timed out"
    """The invocation ran past the function's timeout: the runtime was killed, the environment is replaced."""
    CRASHED = "crashed"
    """The runtime exited or the environment died during the invocation; the environment is replaced."""
    NOT_STARTED = "not started"
    """No environment became free within the time a request may wait (``--queue-seconds``)."""
    THROTTLED = "throttled"
    """Every environment the concurrency allows was busy: refused at once, as Lambda throttles."""


@dataclass(frozen=True)
class InvocationReport:
    """The emulator's ``REPORT`` line of one invocation, plus what it cannot measure itself."""

    request_id: str
    duration_ms: float
    billed_duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    """As the emulator prints it: always the memory size (it has no way to measure it)."""
    init_duration_ms: float | None = None
    """On a cold start only: the emulator's ``INIT REPORT`` duration (init, SnapStart hooks and restore)."""
    peak_rss_mb: int | None = None
    """Measured on a cold start: the serving runtime process's peak resident memory (VmHWM) after it."""


@dataclass(frozen=True)
class Invocation:
    outcome: Outcome
    result: Any = None
    """The handler's result, after the JSON round trip the runtime makes (RETURNED only)."""
    detail: str = ""
    """Why it did not return: the error type and message, the timeout, the exit status."""
    report: InvocationReport | None = None
    environment: str | None = None
    """Which environment ran it, e.g. ``ingest_events#2 (pid 4242)``."""


class Invoker(Protocol):
    """Runs one invocation of a function with a proxy event, as Lambda's Invoke API does for API Gateway."""

    def invoke(
        self, function_name: str, event: dict[str, Any], *, request_id: str, trace_id: str | None = None
    ) -> Invocation: ...

    def close(self) -> None: ...
