"""The rollup builders in a process of their own, beside the gateway (`make serve`) or the benchmark.

Deployed, each part's builder is a scheduled function with execution environments of its own, so its work
never shares an interpreter with the functions that answer requests. Here too: one process runs a builder
thread per part (rollup_runner.RollupRunner), so the builders' Python work neither waits on nor holds up the
GIL of the process that serves requests or measures them. It stops on SIGTERM, and when its parent dies.

    python -m player_sessions_local.builder_process [--work-log PATH] [--report-work]
    (the settings, as JSON, on standard input: BuilderProcess.start writes them)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from player_sessions.settings import Settings
from player_sessions_local.measure.processes import die_with_parent, stop_process
from player_sessions_local.no_metrics import disable_service_metrics

STOP_TIMEOUT_SECONDS = 15.0
"""How long a stopped builder process may take to finish its runs before it is killed."""


@dataclass
class BuilderProcess:
    """A running ``python -m player_sessions_local.builder_process``."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        work_log: Path | None = None,
        report_work: bool = False,
        stdout: int | None = None,
    ) -> BuilderProcess:
        """Starts a builder per part on ``settings`` (its login included). ``work_log``: where each minute's
        measured work goes (the cost model reads it), else the process's standard error; ``report_work``:
        meter the builders' connections (rollup_runner); ``stdout``: as ``subprocess.Popen`` takes it (the
        builders print nothing there: their log goes to standard error)."""
        arguments = [sys.executable, "-m", "player_sessions_local.builder_process"]
        if work_log is not None:
            arguments += ["--work-log", str(work_log)]
        if report_work:
            arguments.append("--report-work")
        process = subprocess.Popen(arguments, stdin=subprocess.PIPE, stdout=stdout)
        assert process.stdin is not None
        process.stdin.write(settings_json(settings).encode())
        process.stdin.close()
        return cls(process)

    def stop(self) -> None:
        stop_process(self.process, STOP_TIMEOUT_SECONDS)


def settings_json(settings: Settings) -> str:
    """The settings as the child reads them back: every field, secrets included."""
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings.model_dump().items()
    }
    return json.dumps(values, default=str)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.builder_process", description=__doc__
    )
    parser.add_argument("--work-log", type=Path, default=None)
    parser.add_argument("--report-work", action="store_true")
    arguments = parser.parse_args(argv)
    die_with_parent(signal.SIGTERM)
    # No Lambda invocation here: the service's EMF metrics would print a blob on this process's standard output
    # (the terminal of `make serve`, the benchmark's console) each time a fold sends its 100th statement.
    disable_service_metrics()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    # Validated as given: the environment of this process does not override what the parent chose.
    settings = Settings.model_validate(json.loads(sys.stdin.read()))

    from player_sessions.bootstrap import build_services
    from player_sessions.clock import SystemClock
    from player_sessions_local.rollup_runner import start_runners

    if arguments.report_work:
        from player_sessions_local.work import install as install_work_meters

        install_work_meters()
    # The stop signals are blocked in every thread (those started below inherit the mask) and taken by
    # sigwait: no handler runs, so none can run while the thread it interrupts holds a lock the handler needs
    # (an Event set from a handler deadlocked a main thread waiting on that Event).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # One builder per part, each with connections of its own, as each part's scheduled function has.
    runners = start_runners(
        lambda _part: build_services(settings, SystemClock()),
        settings.rollup_parts,
        work_log=arguments.work_log,
    )
    try:
        signal.sigwait(STOP_SIGNALS)
    finally:
        for runner in runners:
            runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
