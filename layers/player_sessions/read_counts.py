"""What one request reads: rows and partitions from Cassandra (the repositories count them) and cache lookups.

A request runs inside ``metered()``; every read the repositories make on its thread adds to that request's
tally (reads outside a metered block count nowhere). The counts are exact, so tests bound them, and every route
reports them as EMF metrics (RowsRead, PartitionsRead; http.build_resolver). A paged read counts each page it
fetches, with the rows Cassandra returned in it. A metered block inside another adds to the outer tally: a
handler's tally covers the whole invocation. Not counted: what the driver and the connection send on their own
(connecting, preparing a statement on first use, the probe after an idle spell: cassandra_connection).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class ReadTally:
    rows: int = 0
    """Rows Cassandra returned."""
    partitions: int = 0
    """Partitions those statements addressed (a ``WHERE key IN`` of three counts three)."""
    requests: int = 0
    """Statements sent to Cassandra (one with an ``IN`` list counts once)."""
    cache_hits: int = 0
    cache_misses: int = 0
    """Cache lookups: a hit answered without Cassandra, a miss went on to read it."""


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


@contextmanager
def metered(into: ReadTally | None = None) -> Iterator[ReadTally]:
    """Counts the block's reads into a fresh tally (or ``into``), unless an enclosing block counts them."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    tally = ReadTally() if into is None else into
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)
