"""Where the CPU went during a measurement: the gateway process, its execution environments (the emulators,
and the runtimes running the handlers), the local Cassandra and Redis, the load generator (this process), and
the rest of the machine (other people's work). Read from /proc while the processes live."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from player_sessions_local.measure.processes import (
    command_name,
    descendants,
    machine_busy_seconds,
    own_cpu_seconds,
    process_cpu_seconds,
    service_pids,
)

COMPONENTS = ("gateway", "emulators", "runtimes", "cassandra", "redis", "load generator", "rest of machine")
EMULATOR_NAME = "aws-lambda-rie"


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
    that live at the start (the pool is warm when measured). ``named``: more processes measured apart, each a
    component of its own (the rollup builders' processes), out of the rest of the machine."""

    def __init__(self, gateway_pid: int, named: Mapping[str, Sequence[int]] | None = None) -> None:
        self._gateway = gateway_pid
        self._named = dict(named or {})
        self._services = service_pids()

    def _read(self) -> dict[str, float]:
        return {
            "gateway": process_cpu_seconds(self._gateway),
            "emulators": sum(process_cpu_seconds(pid) for pid in self._emulators),
            "runtimes": sum(process_cpu_seconds(pid) for pid in self._runtimes),
            "cassandra": process_cpu_seconds(self._services["cassandra"])
            if "cassandra" in self._services
            else 0.0,
            "redis": process_cpu_seconds(self._services["redis"]) if "redis" in self._services else 0.0,
            **{name: sum(process_cpu_seconds(pid) for pid in pids) for name, pids in self._named.items()},
            "load generator": own_cpu_seconds(with_children=False),
            "machine": machine_busy_seconds(),
        }

    def start(self) -> None:
        below = descendants(self._gateway)
        self._emulators = [pid for pid in below if command_name(pid) == EMULATOR_NAME]
        self._runtimes = [pid for pid in below if pid not in self._emulators]
        self._started, self._began = self._read(), time.monotonic()

    def stop(self) -> CpuProfile:
        ended, wall = self._read(), time.monotonic() - self._began
        spent = {name: max(0.0, ended[name] - self._started[name]) for name in ended}
        machine = spent.pop("machine")
        spent["rest of machine"] = max(0.0, machine - sum(spent.values()))
        return CpuProfile(spent, wall)
