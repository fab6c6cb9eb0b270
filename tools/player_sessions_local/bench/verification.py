"""What was stored, counted afterwards with plain CQL (not the service's code), and the API's metric checked
against the file."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cassandra.concurrent import execute_concurrent

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection
from player_sessions.repositories.cassandra_store import READ_SESSION
from player_sessions.repositories.cql import Cql
from player_sessions.settings import Settings
from player_sessions.time_buckets import hour_of
from player_sessions_local.bench.dataset import ExpectedRows
from player_sessions_local.bench.environments import http_client
from player_sessions_local.bench.live import ExactCheck, StartTruth, check_counts, instant
from player_sessions_local.bench.options import BARE_ATTEMPTS

SESSIONS_SAMPLE = 2000
"""Sessions rows read back per keyspace (every start row and every completed row is counted)."""


COUNT_HOUR_STARTS = "SELECT session_id FROM session_starts WHERE hour = ? AND shard = ?"


COUNT_PLAYER_COMPLETED = "SELECT session_id FROM completed_sessions_by_player WHERE player_id = ?"


@dataclass
class RowCount:
    table: str
    expected: int
    found: int
    missing: int
    extra: int


def count_rows(settings: Settings, expected: ExpectedRows, rng: random.Random) -> list[RowCount]:
    """Reads back, with plain CQL (not the service's code), every start row and every completed row the
    events should have left, and a sample of session rows."""
    connection = CassandraConnection(settings)
    session = connection.session()
    try:
        hours = sorted({hour_of(ts) for _, _, ts in expected.starts.values()})
        keys = [(hour, shard) for hour in hours for shard in range(settings.start_shards)]
        found_starts: set[uuid.UUID] = set()
        for result in _read_all(session, COUNT_HOUR_STARTS, keys):
            found_starts.update(row.session_id for row in result)
        players = sorted(expected.completed)
        found_completed: dict[str, set[uuid.UUID]] = {}
        for player, result in zip(
            players, _read_all(session, COUNT_PLAYER_COMPLETED, [(p,) for p in players]), strict=True
        ):
            found_completed[player] = {row.session_id for row in result}
        all_sessions = sorted(expected.sessions())
        sample = rng.sample(all_sessions, min(SESSIONS_SAMPLE, len(all_sessions)))
        halves_missing = found_sample = 0
        for session_id, rows in zip(
            sample, _read_all(session, READ_SESSION, [(s,) for s in sample]), strict=True
        ):
            row = rows[0] if rows else None
            found_sample += row is not None
            wants_start, wants_end = session_id in expected.starts, session_id in expected.ends
            halves_missing += (
                row is None or (wants_start and row.start_ts is None) or (wants_end and row.end_ts is None)
            )
    finally:
        connection.close()
    expected_starts = set(expected.starts)
    completed_missing = sum(len(s - found_completed.get(p, set())) for p, s in expected.completed.items())
    completed_extra = sum(len(found_completed[p] - s) for p, s in expected.completed.items())
    return [
        RowCount(
            "session_starts",
            len(expected_starts),
            len(found_starts),
            len(expected_starts - found_starts),
            len(found_starts - expected_starts),
        ),
        RowCount(
            "completed_sessions_by_player",
            expected.completed_count,
            sum(len(s) for s in found_completed.values()),
            completed_missing,
            completed_extra,
        ),
        RowCount(f"sessions (sample of {len(sample)})", len(sample), found_sample, halves_missing, 0),
    ]


def _read_all(session, cql: Cql | str, keys: Sequence[tuple]) -> list[list]:
    """Every row of each key's query. Counting must not fail on a node still compacting the phase's writes:
    the bulk profile's long timeout, and a read that timed out anyway is read again."""
    statement = session.prepare(str(cql))
    rows: list[list | None] = [None] * len(keys)
    pending = list(range(len(keys)))
    for attempt in range(BARE_ATTEMPTS):
        results = execute_concurrent(
            session,
            [(statement, keys[i]) for i in pending],
            concurrency=16,
            raise_on_first_error=False,
            execution_profile=BULK_PROFILE,
        )
        failed = []
        for index, (success, result) in zip(pending, results, strict=True):
            if success:
                rows[index] = list(result)
            else:
                failed.append(index)
        if not failed:
            return rows  # type: ignore[return-value]
        pending = failed
        time.sleep(1 + attempt)
    raise RuntimeError(f"{len(pending)} reads of {cql!r} failed {BARE_ATTEMPTS} times")


@dataclass
class MetricCheck:
    """The builder's catch-up after the load (the scheduled function's work, off the request path), then the
    first country-metric request over 8760 hours, against the file's distinct starts."""

    fold_seconds: float
    starts_folded: int
    seconds: float
    total: int
    expected_total: int
    countries_differing: int
    online: int = 0
    """GET /countries/online's total, against the file's sessions started in its window and never ended."""
    expected_online: int = 0
    completed: int = 0
    """GET /countries/session-lengths?hours=8760's sessions, in range and outside it, against the file's
    sessions with both halves."""
    expected_completed: int = 0

    @property
    def gap(self) -> int:
        return (
            abs(self.total - self.expected_total)
            + abs(self.online - self.expected_online)
            + abs(self.completed - self.expected_completed)
        )


def check_metric(url: str, expected: ExpectedRows, fold_seconds: float, starts_folded: int) -> MetricCheck:
    with http_client(url, timeout=60) as client:
        started = time.perf_counter()
        body = client.get_json("/countries/starts?hours=8760")
        seconds = time.perf_counter() - started
    counted = {item["country"]: item["starts"] for item in body["countries"]}
    wanted = expected.starts_by_country
    differing = sum(1 for country in set(counted) | set(wanted) if counted.get(country, 0) != wanted[country])
    online, completed = live_ops_checks(
        url,
        [(str(sid), ts) for sid, (_, _, ts) in expected.starts.items()],
        {str(sid): ts for sid, ts in expected.ends.items()},
        "after the load",
        hours=8760,
    )
    return MetricCheck(
        fold_seconds,
        starts_folded,
        seconds,
        body["total"],
        sum(wanted.values()),
        differing,
        online.counted,
        online.expected,
        completed.counted,
        completed.expected,
    )


def live_ops_checks(
    url: str, starts: Sequence[tuple[str, datetime]], ends: dict[str, datetime], label: str, hours: int = 24
) -> list[ExactCheck]:
    """The live-ops routes against the stored halves: the sessions online (started in the answer's window, not
    ended) and the completed sessions whose end is in the lengths' window (in range or outside it)."""
    with http_client(url, timeout=60) as client:
        online = client.get_json("/countries/online")
        lengths = client.get_json(f"/countries/session-lengths?hours={hours}")
    since, until = (instant(online[key]) for key in ("from", "to"))
    open_now = sum(1 for sid, ts in starts if since <= ts <= until and sid not in ends)
    since, until = (instant(lengths[key]) for key in ("from", "to"))
    started = {sid for sid, _ in starts}
    ended = sum(1 for sid, ts in ends.items() if sid in started and since <= ts <= until)
    return [
        ExactCheck(f"{label}: sessions online", open_now, online["total"]),
        ExactCheck(
            f"{label}: completed sessions over {hours} h",
            ended,
            lengths["total"]["sessions"] + lengths["total"]["outside"],
        ),
    ]


def live_checks(url: str, truth: StartTruth, ends: dict[str, datetime], label: str) -> list[ExactCheck]:
    """The live scenario's exact checks against every start and end stored so far: the starts over 1 h and
    24 h, the sessions online and the completed sessions over 24 h."""
    starts = [(sid, ts) for sid, ts, _ in truth]
    return check_counts(url, truth, label) + live_ops_checks(url, starts, ends, label)
