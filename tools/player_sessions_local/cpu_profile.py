"""Where the CPU went during a measurement: the gateway process, its execution environments (the emulators,
and the runtimes running the handlers), the local Cassandra and Redis, the load generator (this process), and
the rest of the machine (other people's work). Read from /proc while the processes live."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

LOCAL_DIR = Path(os.environ.get("LOCAL_DIR", Path(__file__).resolve().parents[2] / ".local"))
PID_FILES = {"cassandra": "cassandra/cassandra.pid", "redis": "redis/redis.pid"}
COMPONENTS = ("gateway", "emulators", "runtimes", "cassandra", "redis", "load generator", "rest of machine")
EMULATOR_NAME = "aws-lambda-rie"
_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


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


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK  # all but idle and iowait


def service_pids() -> dict[str, int]:
    pids = {}
    for name, relative in PID_FILES.items():
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int((LOCAL_DIR / relative).read_text().strip())
    return pids


@dataclass(frozen=True)
class CpuProfile:
    seconds: dict[str, float]
    """CPU seconds per component (COMPONENTS)."""
    wall: float

    def per_request_ms(self, requests: int) -> dict[str, float]:
        return {
            name: round(1000 * value / requests, 2) if requests else 0.0
            for name, value in self.seconds.items()
        }

    def cores_busy(self) -> float:
        return sum(self.seconds.values()) / self.wall if self.wall else 0.0


class CpuMeter:
    """CPU of each component between ``start()`` and ``stop()``; environments are the gateway's descendants
    that live at the start (the pool is warm when measured)."""

    def __init__(self, gateway_pid: int) -> None:
        self._gateway = gateway_pid
        self._services = service_pids()

    def _read(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "gateway": process_cpu_seconds(self._gateway),
            "emulators": sum(process_cpu_seconds(pid) for pid in self._emulators),
            "runtimes": sum(process_cpu_seconds(pid) for pid in self._runtimes),
            "cassandra": process_cpu_seconds(self._services["cassandra"])
            if "cassandra" in self._services
            else 0.0,
            "redis": process_cpu_seconds(self._services["redis"]) if "redis" in self._services else 0.0,
            "load generator": own.ru_utime + own.ru_stime,
            "machine": machine_busy_seconds(),
        }

    def start(self) -> None:
        below = descendants(self._gateway)
        self._emulators = [pid for pid in below if _command_name(pid) == EMULATOR_NAME]
        self._runtimes = [pid for pid in below if pid not in self._emulators]
        self._started, self._began = self._read(), time.monotonic()

    def stop(self) -> CpuProfile:
        ended, wall = self._read(), time.monotonic() - self._began
        spent = {name: max(0.0, ended[name] - self._started[name]) for name in ended}
        machine = spent.pop("machine")
        spent["rest of machine"] = max(0.0, machine - sum(spent.values()))
        return CpuProfile(spent, wall)
