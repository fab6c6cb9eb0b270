"""What one request does to its stores: rows and partitions read (the repositories count them), cache lookups,
and the billable work (player_sessions.work_meter measures it at the driver and the Redis client).

A request runs inside ``metered()``; every read the repositories make on its thread adds to that request's
tally (reads outside a metered block count nowhere). Counts are exact, so tests can bound them. A metered block
inside another adds to the outer tally: a handler's tally covers the whole invocation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class TableWork:
    """One table's share of a request, in what Keyspaces bills (player_sessions.keyspaces_units)."""

    rows_written: int = 0
    bytes_written: int = 0
    """Billed (encoded) size of the rows written, without the row and TTL metadata that storage adds."""
    write_units: int = 0
    conditional_writes: int = 0
    """Lightweight transactions: billed as the write, whether the condition held or not."""
    range_deletes: int = 0
    """Deletes of a clustering range: counted as one write unit each (Keyspaces bills the rows they remove,
    which the client does not see)."""
    read_requests: int = 0
    """Pages: each is a read request of its own."""
    rows_read: int = 0
    bytes_read: int = 0
    """Encoded size of the columns returned; Keyspaces bills what it had to read, which may be more."""
    read_units: float = 0.0


@dataclass
class CacheWork:
    """Redis commands and the bytes they moved: what ElastiCache Serverless bills ECPUs on."""

    commands: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class ReadTally:
    rows: int = 0
    partitions: int = 0
    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    tables: dict[str, TableWork] = field(default_factory=dict)
    cache: CacheWork = field(default_factory=CacheWork)

    def table(self, name: str) -> TableWork:
        work = self.tables.get(name)
        if work is None:
            work = self.tables.setdefault(name, TableWork())
        return work


_current: ContextVar[ReadTally | None] = ContextVar("read_tally", default=None)


def count_read(*, rows: int, partitions: int, requests: int = 1) -> None:
    tally = _current.get()
    if tally is not None:
        tally.rows += rows
        tally.partitions += partitions
        tally.requests += requests


def count_cache_lookup(*, hit: bool) -> None:
    tally = _current.get()
    if tally is not None:
        if hit:
            tally.cache_hits += 1
        else:
            tally.cache_misses += 1


def current_tally() -> ReadTally | None:
    return _current.get()


@contextmanager
def attributed_to(tally: ReadTally | None) -> Iterator[None]:
    """Work done inside counts in ``tally``: for requests the driver sends from its own threads."""
    token = _current.set(tally)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def metered() -> Iterator[ReadTally]:
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    tally = ReadTally()
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)
