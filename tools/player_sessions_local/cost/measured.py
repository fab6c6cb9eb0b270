"""The work each invocation measurably did, read back from a gateway's log (`make bench` keeps one per
configuration in its results folder; `make serve` writes the same lines to its output).

Per invocation, joined by request id:
- the emulator's ``REPORT`` line: billed duration and configured memory;
- the function's ``request work`` line (player_sessions_local.work): its route, rows and bytes per table,
  write and read request units, Redis commands and bytes;
- the bytes the function logged (what CloudWatch Logs would ingest): every line an environment printed since
  its previous ``REPORT`` belongs to the invocation that ``REPORT`` closes (an environment runs one at a time).
  The ``request work`` line itself is left out: only local runs write it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from player_sessions_local.work.invocation import SCHEDULED_ROUTE

# 2026-12-01 11:21:16,073 INFO ingest_events#4 <what the environment printed>
_LINE = re.compile(r"^\S+ \S+ [A-Z]+ (?P<function>[a-z_]+)#\w+ (?P<text>.*)$")
_REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\s.*?Billed Duration: (?P<billed>[\d.]+) ms\s+"
    r"Memory Size: (?P<memory>\d+) MB"
)
WORK_MESSAGE = '"message":"request work"'
START_LINE_BYTES = len("START RequestId: 00000000-0000-0000-0000-000000000000 Version: $LATEST\n")
END_LINE_BYTES = len("END RequestId: 00000000-0000-0000-0000-000000000000\n")
"""Lambda writes START and END around every invocation; the local gateway logs them only at debug level."""


@dataclass
class Invocation:
    request_id: str
    function: str
    billed_ms: float = 0.0
    memory_mb: int = 0
    log_bytes: int = 0
    route: str | None = None
    work: dict[str, Any] = field(default_factory=dict)
    metrics: set[str] = field(default_factory=set)
    """The EMF metrics it emitted, as ``namespace/name/dimensions``: each distinct one is a custom metric."""

    @property
    def write_units(self) -> float:
        return float(self.work.get("write_units", 0))

    @property
    def read_units(self) -> float:
        return float(self.work.get("read_units", 0))

    @property
    def cache_commands(self) -> int:
        return int(self.work.get("cache", {}).get("commands", 0))

    @property
    def cache_bytes(self) -> int:
        cache = self.work.get("cache", {})
        return int(cache.get("bytes_sent", 0)) + int(cache.get("bytes_received", 0))

    def rows_written(self, table: str) -> int:
        return int(self.work.get("cassandra", {}).get(table, {}).get("rows_written", 0))


def read_invocations(paths: Iterable[Path]) -> list[Invocation]:
    """Every invocation with both its REPORT and its work line, from these logs; and the local rollup builder's
    minutes, which have no REPORT (it runs in a thread, not an environment: the model bills its schedule)."""
    found: list[Invocation] = []
    for path in paths:
        found += _read_log(path)
    return [invocation for invocation in found if invocation.route is not None]


def _read_log(path: Path) -> list[Invocation]:
    pending_bytes: dict[str, int] = defaultdict(int)
    pending_metrics: dict[str, set[str]] = defaultdict(set)
    work_by_id: dict[str, tuple[str, dict[str, Any]]] = {}
    invocations: list[Invocation] = []
    with path.open(encoding="utf-8", errors="replace") as log:
        for raw in log:
            match = _LINE.match(raw.rstrip("\n"))
            if match is None:
                continue
            # The label with its environment number: lines of one environment are one invocation at a time.
            label = raw.split(" ", 4)[3]
            text = match.group("text")
            report = _REPORT.match(text)
            if report:
                invocation = Invocation(
                    request_id=report.group("id"),
                    function=match.group("function"),
                    billed_ms=float(report.group("billed")),
                    memory_mb=int(report.group("memory")),
                    log_bytes=pending_bytes.pop(label, 0) + len(text) + 1 + START_LINE_BYTES + END_LINE_BYTES,
                    metrics=pending_metrics.pop(label, set()),
                )
                invocations.append(invocation)
                continue
            if text.startswith("{") and WORK_MESSAGE in text:
                record = json.loads(text)
                work_by_id[record.get("function_request_id", "")] = (record.get("route", "?"), record)
                continue
            pending_bytes[label] += len(text) + 1
            if text.startswith('{"_aws"'):
                pending_metrics[label] |= _metric_names(text)
    for invocation in invocations:
        route_and_work = work_by_id.pop(invocation.request_id, None)
        if route_and_work is not None:
            invocation.route, invocation.work = route_and_work
    invocations += [
        Invocation(request_id, "rollup_builder", route=route, work=work)
        for request_id, (route, work) in work_by_id.items()
        if route == SCHEDULED_ROUTE
    ]
    return invocations


def _metric_names(text: str) -> set[str]:
    try:
        document = json.loads(text)["_aws"]
    except (ValueError, KeyError):
        return set()
    names = set()
    for directive in document.get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace", "")
        for dimensions in directive.get("Dimensions", [[]]):
            names |= {
                f"{namespace}/{metric['Name']}/{','.join(dimensions)}" for metric in directive["Metrics"]
            }
    return names


def dashboard_routes(hours: int) -> tuple[str, ...]:
    """The routes a live-ops dashboard polls, as the work lines name them: the counts over its window, the
    sessions online, and the session lengths over the same window."""
    return (
        f"GET /countries/starts?hours={hours}",
        "GET /countries/online",
        f"GET /countries/session-lengths?hours={hours}",
    )
