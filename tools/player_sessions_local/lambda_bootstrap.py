"""The runtime process of a local execution environment: AWS's runtime interface client (awslambdaric) under
the Runtime Interface Emulator, with SnapStart emulated in the order AWS documents for Python.

    aws-lambda-rie ... python -m player_sessions_local.lambda_bootstrap handler.lambda_handler

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` (as Lambda sets it for a SnapStart function) awslambdaric
itself runs the phases: init (the handler module is imported), the ``snapshot_restore_py`` before-snapshot
hooks, the snapshot and restore (``restore_next``), then the after-restore hooks, then invocations. The
emulator's own snapshot support made every invoke time out (docs/decisions.md), so here ``restore_next``
forks: the parent is the snapshot and only waits; the child is the restored environment and serves. Without
it the client runs exactly as ``python -m awslambdaric``.

The emulator is given the function's timeout plus init's allowance (gateway.environments: Lambda gives init
time of its own, the emulator would count init against the timeout). The runtime puts the function's own
timeout back in its environment and sets each invocation's deadline from it, so the handler sees what Lambda
shows it: the timeout, counted from the end of init on a cold start.

With ``PLAYER_SESSIONS_REPORT_WORK`` true (the local gateway's default), each invocation's measured work is
printed after it as a ``request work`` line (player_sessions_local.work); the function's code knows nothing of it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from awslambdaric import bootstrap
from awslambdaric.lambda_config import LambdaConfigProvider
from awslambdaric.lambda_runtime_client import LambdaRuntimeClient

from player_sessions_local.measure.processes import die_with_parent
from player_sessions_local.work import reporting

EMULATOR_TIMEOUT_VARIABLE = "AWS_LAMBDA_FUNCTION_TIMEOUT"
FUNCTION_TIMEOUT_VARIABLE = "PLAYER_SESSIONS_LOCAL_FUNCTION_TIMEOUT"
"""The function's own timeout, set beside the emulator's longer one by the pool (gateway.environments)."""
SERVING_MARKER = "[local-runtime] serving in pid"
"""The line the serving process prints once, so the pool knows which pid runs the invocations."""


def announce_serving(snapshot_pid: int | None) -> None:
    restored = f" (restored from the snapshot of pid {snapshot_pid})" if snapshot_pid else ""
    print(f"{SERVING_MARKER} {os.getpid()}{restored}", flush=True)


class FunctionTimeoutRuntimeClient(LambdaRuntimeClient):
    """Each invocation's deadline set to the function's timeout from when the runtime receives it, that is from
    the request, or from the end of init on a cold start, as Lambda sets it. (The emulator's deadline runs from
    the request even on a cold start, and on its own, longer timeout.)"""

    timeout_ms: int | None = None

    def wait_next_invocation(self) -> Any:
        request = super().wait_next_invocation()
        if self.timeout_ms is not None:
            request.deadline_time_in_ms = int(time.time() * 1000) + self.timeout_ms
        return request


def restore_function_timeout() -> int | None:
    """Puts the function's timeout back in the environment in place of the emulator's; returns it, in ms."""
    own = os.environ.pop(FUNCTION_TIMEOUT_VARIABLE, None)
    if own is None:
        return None
    os.environ[EMULATOR_TIMEOUT_VARIABLE] = own
    return int(own) * 1000


class ForkRestoringRuntimeClient(FunctionTimeoutRuntimeClient):
    """``restore_next`` is where Lambda takes the snapshot and, later, restores it: a fork stands for both."""

    def restore_next(self) -> None:
        snapshot_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            die_with_parent()
            announce_serving(snapshot_pid)
            return
        wait_for_restored(child)


def wait_for_restored(child: int) -> None:
    """The snapshot's process: passes signals on, and exits as the restored environment exits."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: os.kill(child, received))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):  # die the same way, so the emulator reports the same error
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def report_work_of_every_invocation() -> None:
    """Meters the environment's connections and wraps the handler the runtime loads, before init."""
    from player_sessions_local.work import install
    from player_sessions_local.work.invocation import measured

    install()
    load = bootstrap._get_handler
    bootstrap._get_handler = lambda handler: measured(load(handler))


def main(argv: list[str]) -> None:
    die_with_parent()
    FunctionTimeoutRuntimeClient.timeout_ms = restore_function_timeout()
    if reporting():
        report_work_of_every_invocation()
    config = LambdaConfigProvider(argv)
    snap_start = os.environ.get(bootstrap.AWS_LAMBDA_INITIALIZATION_TYPE) == bootstrap.INIT_TYPE_SNAP_START
    client_class = ForkRestoringRuntimeClient if snap_start else FunctionTimeoutRuntimeClient
    if not snap_start:
        announce_serving(None)
    bootstrap.run(config.handler, client_class(config.api_address, config.use_thread_polling))


if __name__ == "__main__":
    main(sys.argv)
