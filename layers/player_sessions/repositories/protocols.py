"""What the domain needs from storage, as small interfaces; the Cassandra and in-memory stores implement them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence, Set
from datetime import datetime
from typing import Protocol
from uuid import UUID

from player_sessions.models import rows
from player_sessions.schema import RollupFamily
from player_sessions.time_buckets import Bucket


class SessionStore(Protocol):
    def write_events(self, writes: Sequence[rows.EventWrite], arrivals: Sequence[rows.ArrivalWrite]) -> None:
        """Stores each event's half of its session, the start row of a start and its arrival, and the player's
        index entries pointing at them, all at once; every arrival's minute is in ``arrival_minutes`` before the
        arrival is."""

    def erasures(
        self, player_hashes: Sequence[bytes], *, per_partition: bool = False
    ) -> dict[bytes, datetime]:
        """For each of the players (by keyed hash) that was erased, the time of the latest erasure: up to a
        hundred players per request, or, when an ``IN`` read failed or with ``per_partition``, one per request."""

    def read_before_writing(
        self, player_hashes: Sequence[bytes], session_ids: Sequence[UUID], parts: Sequence[int]
    ) -> rows.StoredBefore:
        """What ``erasures``, ``read_sessions`` (each with ``IN``) and the starts' watermarks of ``parts`` read, in
        one round; when an ``IN`` failed, the erasure records and the sessions are read again one per request."""

    def unwrite(
        self, writes: Sequence[rows.EventWrite], arrivals: Sequence[rows.ArrivalWrite], keep_starts: Set[UUID]
    ) -> None:
        """Removes what ``write_events`` (and ``write_arrivals``) wrote for these events; for the sessions in
        ``keep_starts`` (a builder may have counted them) the start rows and arrivals stay, without player id."""

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, rows.SessionHalves]:
        """The stored halves of each session that has any."""

    def write_completed(
        self, sessions: Sequence[tuple[rows.CompletedSession, int]], records: Sequence[rows.RecordWrite] = ()
    ) -> None:
        """Stores completed sessions, each with its TTL in seconds (writing one twice changes nothing), and
        with them, at once, the records of sessions with both halves stored (as ``write_records``)."""

    def forget_completed(self, sessions: Sequence[rows.CompletedSession]) -> None:
        """Deletes these completed sessions' rows (history rows written for a player erased meanwhile)."""

    def write_arrivals(self, arrivals: Sequence[rows.ArrivalWrite]) -> None:
        """Stores arrivals (their minutes first, as above)."""

    def write_records(self, records: Sequence[rows.RecordWrite]) -> None:
        """Stores records of the rollup families other than the starts (their minutes first, as above)."""

    def last_completed_sessions(
        self, player_id: str, since: datetime, limit: int
    ) -> list[rows.CompletedSession]:
        """Up to ``limit`` completed sessions of the player, both events at or after ``since``, newest end first."""

    def ping(self) -> float:
        """Round-trip time of a trivial read, in milliseconds; raises DatabaseUnavailableError when down."""


class CacheDebtStore(Protocol):
    """Lost cache invalidations, recorded where the rollup builder pays them (repositories.cache_debt)."""

    def owe(self) -> None:
        """Records that an invalidation was lost: the cache's epoch must be bumped for every environment."""

    def unpaid(self) -> int | None:
        """The latest debt not yet marked paid, or None."""

    def mark_paid(self, debt: int) -> None:
        """Records ``debt`` paid (the epoch was bumped after it was read)."""


class PlayerDataStore(Protocol):
    """What a player's erasure and export use: the player's index, their sessions, the erasure records."""

    def player_writes(
        self, player_hash: bytes, *, after: UUID | None = None, sessions: int | None = None
    ) -> list[rows.PlayerWrite]:
        """The player's index entries, in session id order: all of them, or those of the first ``sessions``
        sessions after the session ``after``."""

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, rows.SessionHalves]:
        """The stored halves of each session that has any."""

    def completed_of(self, player_id: str) -> list[rows.CompletedSession]:
        """Every row of the player's completed sessions (expired ones included until they are removed)."""

    def completed_among(self, player_id: str, sessions: Sequence[tuple[UUID, datetime]]) -> set[UUID]:
        """Those of the (session id, end) pairs that are among the player's completed sessions."""

    def erase_sessions(
        self,
        player_hash: bytes,
        entries: Sequence[rows.PlayerWrite],
        owned: Sequence[UUID],
        still_open: Sequence[UUID] = (),
    ) -> None:
        """Deletes the ``owned`` sessions' rows and takes the player id out of the ``still_open`` ones' (started,
        not ended: an end arriving later closes them), takes it out of the start rows and arrivals the entries
        point at, then deletes the entries (an entry with a negative TTL is not in the index)."""

    def erase_completed(self, player_id: str, sessions: Sequence[rows.CompletedSession]) -> None:
        """Deletes these rows of the player's completed sessions."""

    def erasure_record(self, player_hash: bytes) -> tuple[datetime, UUID] | None:
        """The player's latest erasure: its time and receipt (None when never erased)."""

    def write_erasure_record(
        self, player_hash: bytes, erased_at: datetime, erasure_id: UUID, ttl: int
    ) -> None:
        """Records the erasure (ingest reads it for every event of the player)."""

    def save_receipt(self, receipt: rows.ErasureReceipt, ttl: int) -> None:
        """Writes the receipt as it stands."""

    def read_receipt(self, erasure_id: UUID) -> rows.ErasureReceipt | None:
        """The receipt, or None."""


class StartsStore(Protocol):
    """What readers of session starts use: the rollups, the unfolded tail of arrivals, and the start rows. A store
    reads one rollup family (``family``: the starts, or the records of another exact count, whose "starts" below
    are its records); the start rows' reads belong to the starts family."""

    family: RollupFamily

    def read_progress(self, parts: Sequence[int]) -> dict[int, int]:
        """Each part's watermark: every arrival slot up to it is folded by that part's builder (a part that never
        folded is left out)."""

    def first_arrival_minute(self) -> datetime | None:
        """The oldest minute of server time that holds arrivals (None when none was ever stored)."""

    def arrival_minutes_between(self, first: datetime, last: datetime, limit: int) -> list[datetime]:
        """The oldest ``limit`` minutes in ``[first, last]`` that hold arrivals, oldest first."""

    def read_arrivals(
        self, slots: Sequence[int], shards: Sequence[int], *, per_partition: bool = False
    ) -> list[rows.Arrival]:
        """Every arrival in the slots and shards, read at once: up to a hundred partitions to an ``IN``; if an
        ``IN`` fails (a replica just lost: it fails whole when one of its partitions waits for the dead
        replica), or with ``per_partition``, one partition per request, each routed to that partition's replicas
        (repositories.cassandra_starts, docs/faults.md)."""

    def read_arrivals_within(
        self, slots: Sequence[int], shards: Sequence[int], at_most: int, *, per_partition: bool = False
    ) -> tuple[list[rows.Arrival], int | None]:
        """The arrivals of the oldest ``slots`` (in the order given) that fit in ``at_most`` together, whole
        slots only, and the first slot left unread (None: every slot read). A request asks for one row more than
        the room left, so at most ``at_most`` rows are kept and about twice as many more read in all."""
        ...

    def read_marks(
        self, keys: Sequence[rows.StartKey], *, per_partition: bool = False
    ) -> dict[rows.StartKey, int]:
        """The fold (its id: time_buckets.fold_id) that counted each start that has been counted; read as
        ``read_arrivals`` reads (a partition is a session)."""

    def read_fold_records(
        self, folds: Sequence[int], *, per_partition: bool = False
    ) -> dict[int, frozenset[rows.StartKey]]:
        """The records of the folds that have one: the starts each counted (a fold that counted none has none);
        read as ``read_arrivals`` reads (a partition is a fold)."""

    def read_rollups(self, buckets: Sequence[Bucket]) -> dict[Bucket, list[rows.RollupRow]]:
        """Every row of each bucket (base and deltas, oldest slot first), all requested at once."""

    def start_reading_rollups(
        self, buckets: Sequence[Bucket]
    ) -> Callable[[], dict[Bucket, list[rows.RollupRow]]]:
        """``read_rollups``, its requests sent now and its rows collected by the function returned: the caller
        reads something else meanwhile, and the rows may be read before or after that, or while it runs."""

    def edge_country_counts(
        self, hour: datetime, countries: Sequence[str], since: datetime, before: datetime
    ) -> Counter[str]:
        """Starts per country of the listed countries in ``[since, before)``, a span inside one hour."""

    def country_hour_starts(
        self, hours: rows.HourCounts, country: str, not_after: datetime, not_before: datetime, page_size: int
    ) -> list[Iterator[rows.StartRow]]:
        """For each hour (all requested at once), the country's starts with ``not_before <= ts <= not_after``,
        newest first (ties at one instant in any order). Each hour comes with the most starts of the country its
        partition may hold, when known: an hour known to hold few may be read whole (its rows outside the bounds
        dropped), together with others; any other hour is read lazily, about ``page_size`` rows at a time."""

    def has_country_start_between(self, country: str, after: datetime, until: datetime) -> bool:
        """Whether any start of the country has ``after < ts <= until`` (reads at most one row)."""


class RollupStore(StartsStore, Protocol):
    """What the builder uses besides the readers' view."""

    def stored_starts(self, keys: Sequence[rows.StartKey]) -> set[rows.StartKey]:
        """Those of the starts whose start row is stored (an arrival is written beside its start row, so a
        batch that failed half way may have left one without the other)."""

    def claim_fold(self, fold: int, keys: Sequence[rows.StartKey], ttl_seconds: int) -> list[rows.StartKey]:
        """Records which starts the fold ``fold`` counts, unless a fold of it recorded that already; returns the
        recorded set either way, so concurrent builders agree."""

    def write_marks(self, marks: Sequence[tuple[rows.StartKey, int, int]]) -> None:
        """For each (start, fold, TTL): the start is counted by that fold."""

    def write_deltas(self, fold: int, deltas: Sequence[tuple[Bucket, dict[str, int], int]]) -> None:
        """Each bucket's delta row for the fold: starts per country, with the TTL in seconds."""

    def write_progress(self, part: int, slot: int) -> None:
        """Moves the part's watermark to ``slot`` (never back: a slower builder's older value loses)."""

    def write_bases(self, bases: Sequence[tuple[Bucket, int, dict[str, int], int]]) -> None:
        """For each (bucket, fold, counts, TTL): replaces the bucket's rows up to that fold by one base row
        holding ``counts``, their sum."""
