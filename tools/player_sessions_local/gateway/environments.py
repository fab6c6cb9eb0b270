"""One execution environment: an ``aws-lambda-rie`` process (AWS's Runtime Interface Emulator) running one
function's handler through awslambdaric, one invocation at a time, with the function's handler string,
timeout, memory and environment from the definitions the CDK app deploys.

The emulator's output (START, END, REPORT, ``INIT REPORT``, and what the function prints) goes to the
gateway's log, one line at a time, prefixed with the environment; its REPORT lines are also parsed into the
invocation.

Init has its own time, as on Lambda. The emulator starts an invocation's clock before the init it runs on the
first invoke, so init and handler would share the function's timeout. It is given the timeout plus Lambda's 10 s
for init, and the function's own timeout is kept here: from the end of init (its ``INIT REPORT``) on a cold
start, from the request on a warm one; past it the environment is killed, as Lambda kills it. The runtime sees
the function's timeout and its deadline (player_sessions_local.lambda_bootstrap).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from player_sessions_local.gateway.deadlines import WATCHER, Watch
from player_sessions_local.gateway.invocation import Invocation, InvocationReport, Outcome
from player_sessions_local.gateway.local_functions import REPOSITORY_ROOT, LocalFunction
from player_sessions_local.lambda_bootstrap import (
    EMULATOR_TIMEOUT_VARIABLE,
    FUNCTION_TIMEOUT_VARIABLE,
    SERVING_MARKER,
)

EMULATOR_PATH = Path(os.environ.get("AWS_LAMBDA_RIE") or REPOSITORY_ROOT / ".build/tools/bin/aws-lambda-rie")
"""Built by `make up` (tools/install_prerequisites.sh) from the Go module proxy."""
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
INIT_ALLOWANCE_SECONDS = 10
"""Lambda gives init its own 10 s on top of the function's timeout."""
LISTEN_TIMEOUT_SECONDS = 10
REPORT_WAIT_SECONDS = 5
"""The emulator prints REPORT before it answers; reading the line may lag the answer by a moment."""
_TIMED_OUT = re.compile(r"^Task timed out after [\d.]+ seconds$")
_REPORT_FIELD = re.compile(r"([A-Za-z ]+): ([\d.]+) (?:ms|MB)")
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([\d.]+)\)")
_RAPID_LINE = re.compile(r"^\d\d \w{3} \d{4} [\d:,]+ \[(\w+)\] \(rapid\) ")
_FUNCTION_ERROR_KEYS = frozenset({"errorMessage", "errorType", "requestId", "stackTrace"})
_LOGGER = logging.getLogger("player_sessions_local.lambda")


class EmulatorMissingError(RuntimeError):
    """aws-lambda-rie is not built: `make up` builds it."""


@dataclass
class _PendingReport:
    init_duration_ms: float | None = None
    report: InvocationReport | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ExecutionEnvironment:
    """One emulator process and the runtime it runs; never more than one invocation at a time."""

    def __init__(self, function: LocalFunction, number: int, process: subprocess.Popen, port: int) -> None:
        self.function = function
        self.number = number
        self.process = process
        self.port = port
        self.runtime_pid: int | None = None
        """The process that runs the invocations (after the SnapStart restore), once it announced itself."""
        self.invocations = 0
        self.last_used = time.monotonic()
        self._initialized_at: float | None = None
        self._stopping = False
        self._reports: dict[str, _PendingReport] = {}
        self._current: _PendingReport | None = None
        self._lock = threading.Lock()
        self._connection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=function.timeout_seconds + INIT_ALLOWANCE_SECONDS + 5
        )
        self._reader = threading.Thread(
            target=self._read_output, args=(process.stdout,), name=f"{self.label}-output", daemon=True
        )
        self._reader.start()

    @property
    def label(self) -> str:
        return f"{self.function.name}#{self.number}"

    def __str__(self) -> str:
        return f"{self.label} (pid {self.runtime_pid or self.process.pid})"

    @classmethod
    def start(
        cls,
        function: LocalFunction,
        number: int,
        *,
        region: str,
        spawn: Callable[..., subprocess.Popen] = subprocess.Popen,
    ) -> ExecutionEnvironment:
        """Starts the emulator and waits until it listens; the runtime inits on the first invocation."""
        if not EMULATOR_PATH.is_file():
            raise EmulatorMissingError(f"{EMULATOR_PATH} is missing: `make up` builds it (Go needed)")
        api_port, runtime_api_port = _free_ports(2)
        command = [
            str(EMULATOR_PATH),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{api_port}",
            "--runtime-api-address",
            f"127.0.0.1:{runtime_api_port}",
            sys.executable,
            "-m",
            "player_sessions_local.lambda_bootstrap",
            function.handler,
        ]
        environment = function.runtime_environment(region)
        environment[FUNCTION_TIMEOUT_VARIABLE] = environment[EMULATOR_TIMEOUT_VARIABLE]
        environment[EMULATOR_TIMEOUT_VARIABLE] = str(function.timeout_seconds + INIT_ALLOWANCE_SECONDS)
        process = spawn(
            command,
            cwd=function.code_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        started = cls(function, number, process, api_port)
        started._wait_until_listening()
        return started

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label}: the emulator exited with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.label}: the emulator did not listen within {LISTEN_TIMEOUT_SECONDS} s")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: dict[str, Any], *, request_id: str, trace_id: str | None = None) -> Invocation:
        """One invocation through the emulator's Invoke API, classified as Lambda would."""
        pending = _PendingReport()
        with self._lock:
            self._reports[request_id] = pending
        headers = {"Content-Type": "application/json", "X-Amzn-RequestId": request_id}
        if trace_id:
            headers["X-Amzn-Trace-Id"] = trace_id
        self.invocations += 1
        requested_at = time.monotonic()
        watch = WATCHER.watch(lambda: self._enforced_deadline(requested_at), self._kill_late)
        try:
            # Bytes, so that http.client sends the head and the body in one write.
            self._connection.request("POST", INVOKE_PATH, body=json.dumps(event).encode(), headers=headers)
            response = self._connection.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:  # TimeoutError included
            watch.finished()
            if watch.fired or isinstance(error, TimeoutError):
                invocation = Invocation(Outcome.TIMED_OUT, detail=self._timed_out_detail(watch))
            else:
                invocation = Invocation(Outcome.CRASHED, detail=f"the emulator is gone ({error})")
            return self._finish(invocation, request_id, pending, reported=False)
        finally:
            self.last_used = time.monotonic()
        watch.finished()
        if watch.fired:  # the answer came as the environment was being killed: too late all the same
            invocation = Invocation(Outcome.TIMED_OUT, detail=self._timed_out_detail(watch))
            return self._finish(invocation, request_id, pending, reported=False)
        invocation = self._classify(status, payload)
        # The emulator prints no REPORT for an invocation whose runtime exited (Lambda would).
        reported = invocation.outcome is not Outcome.CRASHED
        return self._finish(invocation, request_id, pending, reported=reported)

    def _timed_out_detail(self, watch: Watch) -> str:
        if watch.fired:
            return f"Task timed out after {self.function.timeout_seconds:.2f} seconds"
        return "the emulator did not answer in time"

    def _enforced_deadline(self, requested_at: float) -> float | None:
        """The deadline this gateway enforces (None: none yet, init is running; or none at all, init ran past
        its allowance and the emulator's own clock ends the invocation)."""
        deadline = self.handler_deadline(requested_at)
        if deadline is None:
            return None
        timeout = self.function.timeout_seconds
        counted_from = deadline - timeout  # the end of init on a cold start, else the request
        return None if counted_from > requested_at + INIT_ALLOWANCE_SECONDS + timeout else deadline

    def _kill_late(self) -> None:
        _LOGGER.warning("%s ran past the function's timeout; killing it, as Lambda does", self)
        self.stop()

    def handler_deadline(self, requested_at: float) -> float | None:
        """When the invocation requested at ``requested_at`` is out of time: the function's timeout after the
        request, or after init on a cold start (None: init has not ended yet)."""
        if self._initialized_at is None:
            return None
        return max(requested_at, self._initialized_at) + self.function.timeout_seconds

    def _classify(self, status: int, payload: bytes) -> Invocation:
        text = payload.decode("utf-8", errors="replace")
        if status == 200 and _TIMED_OUT.match(text):
            return Invocation(Outcome.TIMED_OUT, detail=text)
        try:
            result = json.loads(payload)
        except ValueError:
            if status == 200:
                return Invocation(Outcome.RETURNED, result=text)
            return Invocation(Outcome.CRASHED, detail=f"emulator answered {status}: {text[:200]}")
        if isinstance(result, dict) and "errorType" in result and result.keys() <= _FUNCTION_ERROR_KEYS:
            detail = f"{result['errorType']}: {result.get('errorMessage', '')}"
            # Runtime.* errors are the runtime's own (import failed, exited): the environment is done for.
            crashed = str(result["errorType"]).startswith("Runtime.") or status != 200
            return Invocation(Outcome.CRASHED if crashed else Outcome.FUNCTION_ERROR, detail=detail)
        if status != 200:
            return Invocation(Outcome.CRASHED, detail=f"emulator answered {status}: {text[:200]}")
        return Invocation(Outcome.RETURNED, result=result)

    def _finish(
        self, invocation: Invocation, request_id: str, pending: _PendingReport, *, reported: bool
    ) -> Invocation:
        if reported:
            pending.done.wait(REPORT_WAIT_SECONDS)
        with self._lock:
            self._reports.pop(request_id, None)
        report = pending.report
        if report is not None and report.init_duration_ms is not None and self.runtime_pid is not None:
            # On cold starts only: reading /proc costs a tenth of a millisecond, a tenth of the invocation path.
            report = _with_peak_rss(report, self.runtime_pid)
            _LOGGER.info(
                "%s cold start: Init Duration %.0f ms (init, SnapStart hooks, restore), peak RSS %s MB",
                self,
                report.init_duration_ms,
                report.peak_rss_mb,
            )
        return Invocation(
            invocation.outcome,
            result=invocation.result,
            detail=invocation.detail,
            report=report,
            environment=str(self),
        )

    def stop(self) -> None:
        """Kills the emulator and its runtime (their own process group), and reaps them."""
        self._stopping = True  # what the dying runtime prints (its lost Runtime API connection) is not news
        self._connection.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _LOGGER.warning("%s: the emulator (pid %d) did not exit after SIGKILL", self, self.process.pid)

    # --- The emulator's output ---------------------------------------------------------------------------

    def _read_output(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line and not self._stopping:
                self._take_line(line)
        stream.close()

    def _take_line(self, line: str) -> None:
        rapid = _RAPID_LINE.match(line)
        if rapid:
            level = logging.WARNING if rapid.group(1) in ("WARNING", "ERROR") else logging.DEBUG
            init = _INIT_REPORT.search(line)
            if init:
                level = logging.INFO
                self._initialized_at = time.monotonic()
                if self._current is not None:
                    self._current.init_duration_ms = float(init.group(1))
            _LOGGER.log(level, "%s %s", self.label, line)
            return
        # START and END only frame the REPORT, which has the request id too: kept out of the INFO log.
        level = logging.DEBUG if line.startswith(("START RequestId: ", "END RequestId: ")) else logging.INFO
        _LOGGER.log(level, "%s %s", self.label, line)
        if line.startswith("START RequestId: "):
            request_id = line.split()[2]
            with self._lock:
                self._current = self._reports.get(request_id)
        elif line.startswith("REPORT RequestId: "):
            self._take_report(line)
        elif line.startswith(SERVING_MARKER):
            self.runtime_pid = int(line.removeprefix(SERVING_MARKER).split()[0])

    def _take_report(self, line: str) -> None:
        request_id = line.split()[2]
        fields = {name.strip(): float(value) for name, value in _REPORT_FIELD.findall(line)}
        with self._lock:
            pending = self._reports.get(request_id)
        if pending is None:
            return
        # The emulator's own "Init Duration" times only its call to start the runtime (well under a
        # millisecond); the INIT REPORT line before it has the real init: imports, SnapStart hooks, restore.
        cold = "Init Duration" in fields
        pending.report = InvocationReport(
            request_id=request_id,
            duration_ms=fields["Duration"],
            billed_duration_ms=fields["Billed Duration"],
            memory_size_mb=int(fields["Memory Size"]),
            max_memory_used_mb=int(fields["Max Memory Used"]),
            init_duration_ms=(pending.init_duration_ms or fields["Init Duration"]) if cold else None,
        )
        pending.done.set()


def _with_peak_rss(report: InvocationReport, pid: int) -> InvocationReport:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return report
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        return report
    return InvocationReport(**{**report.__dict__, "peak_rss_mb": round(int(match.group(1)) / 1024)})


def _free_ports(count: int) -> list[int]:
    """Ports the kernel picks from its ephemeral range: never one of the services' well-known ports."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the emulator's process before exec: SIGKILL when the thread that started it ends. The pool starts
    environments from one long-lived thread, so that is when the gateway stops, however it stops."""
    _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
