"""The arrivals of settled slots, kept by a reader's environment from one request to the next.

Every count and listing reads the arrivals after the oldest watermark (domain.country_starts.window): under a
busy game a few seconds of them, read and decoded again by each request; with the builders far behind, up to
the tail's cap every time. A slot the builder may fold (``time_buckets.last_foldable_slot``: it ended
SLOT_SETTLE ago) can be kept as a builder keeps what it folded: an arrival that lands in it later was
acknowledged too late for it, and its writer writes it again into a newer slot (domain.ingest,
``MAX_ARRIVAL_ATTEMPTS``), which a later read meets. A reader that takes a settled slot from here therefore
misses no start that a builder folding that slot at the same moment would not also have missed, and every
count already holds that case (a builder that folds a slot before a slow write lands).

So a request reads from storage only the slots after the kept ones, and keeps those of them that are settled,
per rollup family, up to as many arrivals as a request may read (``Settings.tail_arrivals_read_at_most``). A
kept slot at or before a tail's first slot is dropped: the builders have folded it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from player_sessions.models import Arrival
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import last_foldable_slot


class SettledArrivals:
    """Per rollup family, the arrivals of settled slots read so far, by slot (the services of an environment
    hold one: ``Services.settled_arrivals``). Safe to share between threads."""

    def __init__(self) -> None:
        self._families: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def read(
        self, store: StartsStore, slots: Sequence[int], shards: Sequence[int], at_most: int, now: datetime
    ) -> tuple[list[Arrival], int | None]:
        """As ``store.read_arrivals_within(slots, shards, at_most)`` (``slots`` oldest first), the kept slots at
        their head taken from here; of the slots read, those settled at ``now`` (a time at or before the read)
        are kept."""
        settled = last_foldable_slot(now)
        shards = tuple(shards)
        with self._lock:
            kept = self._families.setdefault(store.family.name, _Kept(shards))
            if kept.shards == shards:
                kept.drop_before(slots[0] if slots else settled + 1)
                head, known = kept.head(slots, at_most)
        if kept.shards != shards:
            # Other shards than the family's kept slots were read over: read as asked.
            return store.read_arrivals_within(slots, shards, at_most)
        rest = slots[len(head) :]
        if not rest:
            return known, None
        fresh, unread = store.read_arrivals_within(rest, shards, at_most - len(known))
        whole = rest if unread is None else rest[: rest.index(unread)]
        with self._lock:
            kept.keep([slot for slot in whole if slot <= settled], fresh, at_most)
        return known + fresh, unread


class _Kept:
    """One family's kept slots (for the shards they were read over)."""

    def __init__(self, shards: tuple[int, ...]) -> None:
        self.shards = shards
        self.slots: dict[int, list[Arrival]] = {}
        self.arrivals = 0

    def drop_before(self, first: int) -> None:
        for slot in [slot for slot in self.slots if slot < first]:
            self.arrivals -= len(self.slots.pop(slot))

    def head(self, slots: Sequence[int], at_most: int) -> tuple[list[int], list[Arrival]]:
        """The kept slots at the head of ``slots`` that fit in ``at_most`` arrivals, and their arrivals."""
        head: list[int] = []
        known: list[Arrival] = []
        for slot in slots:
            arrivals = self.slots.get(slot)
            if arrivals is None or len(known) + len(arrivals) > at_most:
                break
            head.append(slot)
            known += arrivals
        return head, known

    def keep(self, slots: list[int], read: list[Arrival], at_most: int) -> None:
        """Keeps ``slots`` (read whole, each with its arrivals among ``read``) while the family's arrivals kept stay
        within ``at_most``."""
        by_slot: dict[int, list[Arrival]] = {slot: [] for slot in slots}
        for arrival in read:
            if arrival.slot in by_slot:
                by_slot[arrival.slot].append(arrival)
        for slot in slots:
            arrivals = by_slot[slot]
            if self.arrivals + len(arrivals) > at_most:
                return
            if slot not in self.slots:
                self.slots[slot] = arrivals
                self.arrivals += len(arrivals)
