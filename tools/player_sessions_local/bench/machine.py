"""The machine a benchmark ran on, as its report states it."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.settings import Settings


def machine_description(settings: Settings) -> dict[str, str]:
    cpu_model = "unknown"
    memory = "unknown"
    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        kib = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    connection = CassandraConnection(settings, use_keyspace=False)
    try:
        cassandra = (
            connection.session().execute("SELECT release_version FROM system.local").one().release_version
        )
    finally:
        connection.close()
    import cassandra as driver

    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cassandra": cassandra,
        "driver": f"cassandra-driver {driver.__version__}",
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def git_commit() -> str:
    """The checkout's commit (with ``+changes`` when the work tree differs), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty.stdout.strip() else "")
