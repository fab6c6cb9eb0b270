"""What storing a start reads before writing its arrival, so that readers need not read the start's mark.

A reader meets a late start in the unfolded tail (stamped before the rollups' cutoff, in a slot its part has
not folded) and must tell whether the rollups it read hold it already: a copy of it re-sent after an older one
was folded, or the fold of its own slot done while the reader read. The start's mark says so, one partition a
start, on every request that meets it. Instead, ingest reads, in this order and before writing the arrival:

1. every part's watermark: ``through``, the oldest. A builder writes a fold's marks before it moves its
   watermark past the fold's slot, so every fold of a slot up to ``through`` had written its marks;
2. the start's mark: ``fold``, the fold that counted it, or None.

Stored with the arrival (models.Seen), this settles the reader's question without the mark:
- ``fold`` set: the start was counted by that fold, for good; the rollups hold it when they include that fold;
- ``fold`` None: no fold of a slot up to ``through`` counted it, nor ever will (a fold's counted set is its
  record, the first claim of the fold wins, and no run claims a fold of a slot its part's watermark has
  passed: domain.country_starts.builder). Only a fold of its own part, of a slot after ``through``, can
  have counted it, and only by naming it in that fold's record; so the rollups hold it exactly when one of
  the folds they include among those records names it. Those are a few recent folds, whose records are one
  row each, kept once read (repositories.cassandra_starts). More than FOLD_RECORDS_PER_START_AT_MOST of them
  (a watermark that was far behind when the start was stored) and the reader reads the mark after all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from player_sessions.domain.country_starts.rollups import Inclusion
from player_sessions.models import Seen, StartKey
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import Bucket, Partition, start_shard

FOLD_RECORDS_PER_START_AT_MOST = 16
"""The most fold records a reader consults for one late start instead of its mark (a few are the seconds
between the ingest's watermark and the reader's, per part)."""


def seen_before_storing(
    store: StartsStore, keys: Sequence[StartKey], parts: Sequence[int], watermarks: Mapping[int, int]
) -> dict[StartKey, Seen]:
    """What the arrivals of ``keys`` are stored with: the ``watermarks`` of ``parts``, read before this is
    called (with the rest of what a batch reads before it writes: SessionStore.read_before_writing), then the
    marks, read here (nothing when a part has never folded: its watermark bounds nothing)."""
    if not keys or any(part not in watermarks for part in parts):
        return {}
    through = min(watermarks[part] for part in parts)
    marks = store.read_marks(keys)
    return {key: Seen(through, marks.get(key)) for key in keys}


def not_in_the_rollups(
    late: Sequence[tuple[StartKey, Bucket]],
    seen: dict[StartKey, Seen],
    inclusion: dict[Bucket, Inclusion],
    store: StartsStore,
    partition: Partition,
) -> tuple[list[StartKey], list[tuple[StartKey, Bucket]]]:
    """Of the late tail starts (each with the bucket of the plan holding it), those the rollups read do not
    hold, decided from what was seen when they were stored; and those without enough of it, whose marks are
    read."""
    not_held: list[StartKey] = []
    unknown: list[tuple[StartKey, Bucket]] = []
    asked: dict[StartKey, list[int]] = {}
    for key, bucket in late:
        what = seen.get(key)
        if what is None:
            unknown.append((key, bucket))
        elif what.fold is not None:
            if not inclusion[bucket].includes(what.fold):
                not_held.append(key)
        else:
            part = partition.part_of(start_shard(key.session_id, partition.shards))
            folds = inclusion[bucket].folds_after(what.through, part, FOLD_RECORDS_PER_START_AT_MOST)
            if folds is None:
                unknown.append((key, bucket))
            elif folds:
                asked[key] = folds
            else:
                not_held.append(key)
    if asked:
        records = store.read_fold_records(sorted({fold for folds in asked.values() for fold in folds}))
        not_held += [key for key, folds in asked.items() if not any(key in records.get(f, ()) for f in folds)]
    return not_held, unknown
