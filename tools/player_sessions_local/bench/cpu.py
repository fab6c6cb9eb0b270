"""CPU spent per phase: the bench's own processes, the local Cassandra and Redis, and the rest of the machine."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_LOCAL_DIR = Path(__file__).resolve().parents[3] / ".local"
LOCAL_DIR = Path(os.environ.get("LOCAL_DIR") or REPOSITORY_LOCAL_DIR)


SERVER_PID_FILES = {
    "cassandra": LOCAL_DIR / "cassandra" / "cassandra.pid",
    "redis": LOCAL_DIR / "redis" / "redis.pid",
}


_TICK = os.sysconf("SC_CLK_TCK")


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


def own_cpu_seconds() -> float:
    """This process (every thread) and the child processes it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def server_pids() -> dict[str, int]:
    pids = {}
    for name, path in SERVER_PID_FILES.items():
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int(path.read_text().strip())
    return pids


@dataclass
class CpuUse:
    """CPU seconds a phase cost: the bench's side (loader, bare loop, gateways and clients), the local Cassandra
    and Redis, and everything else on the machine (other people's work: the noise)."""

    client: float
    cassandra: float
    redis: float
    others: float
    wall: float

    def per_thousand(self, events: int) -> dict[str, float]:
        scale = 1000 / events if events else 0.0
        return {
            "client": self.client * scale,
            "cassandra": self.cassandra * scale,
            "redis": self.redis * scale,
        }


class CpuMeter:
    def __init__(self, watched: Callable[[], Sequence[int]] = lambda: ()) -> None:
        self._watched = watched
        self._servers = server_pids()

    def __enter__(self) -> CpuMeter:
        self._pids = list(self._watched())
        self._start = self._snapshot()
        return self

    def _snapshot(self) -> tuple[float, float, dict[str, float], float, float]:
        return (
            own_cpu_seconds(),
            sum(process_cpu_seconds(pid) for pid in self._pids),
            {name: process_cpu_seconds(pid) for name, pid in self._servers.items()},
            machine_busy_seconds(),
            time.monotonic(),
        )

    def stop(self) -> CpuUse:
        """Call before watched processes end (their CPU is read from /proc while they live)."""
        own, watched, servers, busy, wall = self._snapshot()
        own0, watched0, servers0, busy0, wall0 = self._start
        client = own - own0 + watched - watched0
        cassandra = servers.get("cassandra", 0.0) - servers0.get("cassandra", 0.0)
        redis_cpu = servers.get("redis", 0.0) - servers0.get("redis", 0.0)
        return CpuUse(
            client,
            cassandra,
            redis_cpu,
            max(0.0, busy - busy0 - client - cassandra - redis_cpu),
            wall - wall0,
        )

    def __exit__(self, *exc_info: object) -> None:
        return None
