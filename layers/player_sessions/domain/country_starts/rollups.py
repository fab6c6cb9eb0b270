"""What a rollup bucket's rows add up to, and which folds they already include (as one read sees them).

A bucket holds one delta row per folded slot that counted starts in it and, once compacted, a base row that sums
every slot up to its own. The newest base wins; deltas at or before it are already inside it (a late duplicate
of one, rewritten by a slow builder, is ignored the same way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from player_sessions.models import RollupRow
from player_sessions.time_buckets import FOLD_SPACE, fold_id


@dataclass(frozen=True)
class BucketState:
    counts: Counter[str]
    base_slot: int | None
    delta_slots: frozenset[int]

    def includes(self, slot: int) -> bool:
        """Whether the fold of ``slot`` is already counted in ``counts``."""
        return (self.base_slot is not None and slot <= self.base_slot) or slot in self.delta_slots


def bucket_state(rows: Iterable[RollupRow], up_to: int | None = None) -> BucketState:
    """The bucket's counts from its rows (only slots ``<= up_to`` when given: what a compaction may sum)."""
    kept = [row for row in rows if up_to is None or row.slot <= up_to]
    base = max((row for row in kept if row.base), key=lambda row: row.slot, default=None)
    base_slot = base.slot if base is not None else None
    # Plain dict sums: a count reads up to a hundred of these rows of sixty countries each.
    counts: dict[str, int] = dict(base.counts) if base is not None else {}
    deltas = set()
    for row in kept:
        if not row.base and (base_slot is None or row.slot > base_slot):
            for country, starts in row.counts.items():
                counts[country] = counts.get(country, 0) + starts
            deltas.add(row.slot)
    return BucketState(Counter({c: n for c, n in counts.items() if n > 0}), base_slot, frozenset(deltas))


@dataclass(frozen=True)
class Inclusion:
    """Which folds (by fold id) a bucket's counts include: every fold up to ``folded_through`` (all done before
    the bucket was read), and the newer ones its rows show."""

    folded_through: int | None
    base_slot: int | None
    delta_slots: frozenset[int]

    def includes(self, fold: int) -> bool:
        return (
            (self.folded_through is not None and fold <= self.folded_through)
            or (self.base_slot is not None and fold <= self.base_slot)
            or fold in self.delta_slots
        )

    @classmethod
    def of(cls, state: BucketState, folded_through: int | None) -> Inclusion:
        newer = frozenset(s for s in state.delta_slots if folded_through is None or s > folded_through)
        return cls(folded_through, state.base_slot, newer)

    def folds_after(self, slot: int, part: int, at_most: int) -> list[int] | None:
        """The folds of ``part`` of the slots after ``slot`` that these counts include, oldest first; None when
        there are more than ``at_most``."""
        first = fold_id(slot + 1, part)
        whole = max((f for f in (self.folded_through, self.base_slot) if f is not None), default=first - 1)
        last = (whole - part) // FOLD_SPACE
        if last - slot > at_most:
            return None
        folds = [fold_id(s, part) for s in range(slot + 1, last + 1)]
        folds += sorted(f for f in self.delta_slots if f > max(whole, first - 1) and f % FOLD_SPACE == part)
        return folds if len(folds) <= at_most else None
