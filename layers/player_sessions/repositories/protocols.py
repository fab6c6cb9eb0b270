"""What the domain needs from storage, as small interfaces; the Cassandra and in-memory stores implement them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from player_sessions.models import CompletedSession, EventWrite, RollupRow, SessionHalves, StartRow
from player_sessions.time_buckets import Bucket, Level


class SessionStore(Protocol):
    def write_events(self, writes: Sequence[EventWrite]) -> None:
        """Stores each event's half of its session (and the start row of a start), acknowledged by all."""

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        """The stored halves of each session that has any."""

    def write_completed_and_touch_revisions(self, sessions: Sequence[tuple[CompletedSession, int]],
                                            buckets: Sequence[tuple[Bucket, int]]) -> None:
        """Stores completed sessions, each with its TTL in seconds (writing one twice changes nothing), and gives
        each bucket a new revision (TTL in seconds), so rollups built before are no longer used; all at once."""

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        """Up to ``limit`` completed sessions of the player, both events at or after ``since``, newest end first."""

    def ping(self) -> float:
        """Round-trip time of a trivial read, in milliseconds; raises DatabaseUnavailableError when down."""


PartitionRange = tuple[Level, datetime, datetime, datetime]
"""A rollup partition (level, period) and the first and last bucket wanted from it."""


class StartsStore(Protocol):
    """Session starts by hour, and the rollups of their counts."""

    def country_counts_between(self, hours: Sequence[datetime], since: datetime, until: datetime) -> Counter[str]:
        """Starts per country in the given hours (all shards, read concurrently) with ``since <= ts <= until``."""

    def hour_country_counts(self, hours: Sequence[datetime]) -> dict[datetime, Counter[str]]:
        """Each whole hour's starts per country, all shards (hours read concurrently)."""

    def country_hour_starts(self, hours: Sequence[tuple[datetime, int | None]], country: str, not_after: datetime,
                            not_before: datetime, page_size: int) -> list[Iterator[StartRow]]:
        """For each hour (all requested at once), the country's starts with ``not_before <= ts <= not_after``,
        newest first (ties at one instant in any order). Each hour comes with the country's count in it when its
        rollup knows it: an hour known to hold few may be read whole, together with others; any other hour is
        read lazily, ``page_size`` rows at a time per shard."""

    def rollups_and_revisions(self, ranges: Sequence[PartitionRange]) -> tuple[
            dict[tuple[Level, datetime], dict[datetime, dict[str, RollupRow]]],
            dict[tuple[Level, datetime], dict[datetime, UUID]]]:
        """For each partition's bucket range, all read at once: the rollup rows (bucket -> country, and ``*``,
        -> row) and the current revision of each bucket that has one."""

    def country_rollups_and_revisions(self, country: str, buckets: Sequence[tuple[Level, datetime, list[datetime]]],
                                      ) -> tuple[dict[tuple[Level, datetime], dict[datetime, dict[str, RollupRow]]],
                                                 dict[tuple[Level, datetime], dict[datetime, UUID]]]:
        """As ``rollups_and_revisions``, for the listed buckets of each partition, with only two rollup rows
        per bucket: the country's and the ``*`` total."""

    def write_rollups(self, rollups: Sequence[tuple[Bucket, dict[str, int], UUID | None, int]]) -> None:
        """Stores each bucket's counts under its revision with its TTL; every ``*`` total row last."""
