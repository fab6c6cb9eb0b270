"""CPU spent per phase: the bench's own processes, the local Cassandra and Redis, and the rest of the machine."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from player_sessions_local.measure.processes import (
    machine_busy_seconds,
    own_cpu_seconds,
    process_cpu_seconds,
    service_pids,
)


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
        self._servers = service_pids()

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
