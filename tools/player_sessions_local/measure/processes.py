"""Processes the tools start or watch: a local gateway or builders in a process of their own (none outlives
its parent), and CPU read from /proc."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_DIR = Path(os.environ.get("LOCAL_DIR") or Path(__file__).resolve().parents[3] / ".local")
"""Where the services this checkout runs keep their pids (tools/local_services.sh)."""
SERVICE_PID_FILES = {"cassandra": "cassandra/cassandra.pid", "redis": "redis/redis.pid"}
_TICK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def die_with_parent(signal_number: int = signal.SIGKILL) -> None:
    """Asks Linux for ``signal_number`` when the parent goes (SIGKILL by default: the emulator kills the
    runtime it started, and nothing may outlive it); exits at once if the parent is already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal_number)
    if os.getppid() == 1:  # the parent went before prctl took effect
        os._exit(1)


# --- CPU --------------------------------------------------------------------------------------------------


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


def own_cpu_seconds(*, with_children: bool = True) -> float:
    """This process (every thread) and, by default, the child processes it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    if with_children:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += children.ru_utime + children.ru_stime
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def service_pids() -> dict[str, int]:
    """The local Cassandra's and Redis's pids, where their pid files are."""
    pids = {}
    for name, relative in SERVICE_PID_FILES.items():
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int((LOCAL_DIR / relative).read_text().strip())
    return pids


# --- A local gateway in its own process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class GatewayProcess:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def pids(self) -> list[int]:
        """The gateway and every process under it (execution environments: emulators and runtimes)."""
        return [self.process.pid, *descendants(self.process.pid)]

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.process, timeout)


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; waits for it either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_gateway(
    name: str, environment: Mapping[str, str], log_path: Path, arguments: Sequence[str] = ()
) -> GatewayProcess:
    """``python -m player_sessions_local.gateway`` as `make serve` runs it, on a free port, with these variables
    over this process's, its output in ``log_path``; returns once it listens."""
    port = free_port()
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true", **environment}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "player_sessions_local.gateway", "--port", str(port), *arguments],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = GatewayProcess(name, f"http://127.0.0.1:{port}", process, log_path)
    wait_until_listening(gateway)
    return gateway


def wait_until_listening(gateway: GatewayProcess, timeout: float = 60) -> None:
    port = int(gateway.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway {gateway.name} exited: {gateway.log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"gateway {gateway.name} did not listen within {timeout:g} s")
