"""The one statement of access (player_sessions.access) against what each function really sends, on the real
Cassandra, each function logged in as its own role: every statement it sends is one it is given (else its role
would refuse it), and every statement it is given is one it sends (so no grant is unneeded). The local roles
hold exactly the grants derived from it; the deployed IAM policies are held to the same in tests/infra."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.query import BatchStatement, BoundStatement

from player_sessions import routes
from player_sessions.access import FUNCTION_STATEMENTS
from player_sessions.cassandra_connection import PROBE, CassandraConnection
from player_sessions.clock import FixedClock
from player_sessions.domain.cache_debt import CacheDebtCollector
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import CompactionTracker, RollupBuilder
from player_sessions.domain.health import check_health
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.live_ops import LiveOps
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.domain.privacy import erase_player, export_player
from player_sessions.models import StartKey
from player_sessions.repositories.cache_debt import CassandraCacheDebt
from player_sessions.repositories.cache_protocol import NoCache
from player_sessions.repositories.cassandra_player_data import CassandraPlayerDataStore
from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
from player_sessions.repositories.cassandra_starts import CassandraStartsStore
from player_sessions.repositories.cassandra_store import CassandraSessionStore
from player_sessions.routes import LambdaFunction
from player_sessions.schema import COMPLETIONS, LENGTHS
from player_sessions.time_buckets import Level, fold_id, slot_of
from player_sessions_local.cassandra_roles import as_function, expected_grants, role_of
from tests.integration.test_ingest_on_cassandra import end_event, start_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 20, 12, 30, 15, 250_000, tzinfo=UTC)


class Recorder:
    """A request-init listener: the text of every statement the session sends (a batch's, one by one)."""

    def __init__(self) -> None:
        self.sent: set[str] = set()

    def __call__(self, future) -> None:
        query = future.query
        if isinstance(query, BatchStatement):
            registry = future.session.cluster._prepared_statements
            for is_prepared, statement, _ in query._statements_and_parameters:
                self.sent.add(registry[statement].query_string if is_prepared else str(statement))
        elif isinstance(query, BoundStatement):
            self.sent.add(query.prepared_statement.query_string)
        else:
            self.sent.add(str(getattr(query, "query_string", query)))

    def statements(self) -> set[str]:
        return self.sent - {PROBE}


@pytest.fixture
def as_each_function(counts_stores, counts_settings) -> Iterator[dict[LambdaFunction, tuple]]:
    """For each function: a connection logged in as its role, on emptied tables, and what it sent."""
    opened: dict[LambdaFunction, tuple] = {}
    for function in FUNCTION_STATEMENTS:
        connection = CassandraConnection(as_function(function, counts_settings))
        recorder = Recorder()
        connection.session().add_request_init_listener(recorder)
        opened[function] = (connection, recorder)
    yield opened
    for connection, _ in opened.values():
        connection.close()


def test_each_function_sends_exactly_the_statements_it_is_given(as_each_function, counts_settings):
    settings = counts_settings
    connection = {function: opened for function, (opened, _) in as_each_function.items()}
    sessions = CassandraSessionStore(connection[routes.INGEST_EVENTS])
    # (what ingest reads before writing arrivals: the watermarks and the marks)
    seen_by_ingest = CassandraStartsStore(connection[routes.INGEST_EVENTS], settings.start_shards)
    builder = CassandraRollupStore(connection[routes.ROLLUP_BUILDER], settings.start_shards)
    readers = CassandraStartsStore(connection[routes.COUNTRY_STARTS], settings.start_shards)
    # (the live-ops families: completed sessions and session lengths, read and folded as the starts are)
    family_builders = [
        CassandraRollupStore(connection[routes.ROLLUP_BUILDER], settings.start_shards, family)
        for family in (COMPLETIONS, LENGTHS)
    ]
    family_readers = [
        CassandraStartsStore(connection[routes.COUNTRY_STARTS], settings.start_shards, family)
        for family in (COMPLETIONS, LENGTHS)
    ]

    # Given a day of starts and two of the sessions ended (ingest's role), a third later
    clock = FixedClock(NOW)
    ids = [uuid.uuid4() for _ in range(40)]
    events = [
        start_event("p1", i, NOW - timedelta(minutes=37 * n), ("FI", "US")[n % 2]) for n, i in enumerate(ids)
    ]
    events += [end_event("p1", ids[0], NOW + timedelta(seconds=1))]
    for first in range(0, len(events), 10):
        ingest_batch(
            events[first : first + 10], store=sessions, clock=clock, settings=settings, counted=seen_by_ingest
        )
    # (two seconds later, after the slot of the first end, stamped a second ahead: each family's records of the
    # two sessions reach its month in two folds, whatever their parts, and a compaction sums them)
    clock.advance(seconds=2)
    ingest_batch([end_event("p1", ids[1], NOW)], store=sessions, clock=clock, settings=settings)

    # When readers count them before any fold (country starts' role), the builder folds them, compacting every
    # bucket it touches, and two folds claim one slot
    CountryStarts(readers, clock, settings).counts(24)
    clock.advance(seconds=10)
    for store in (builder, *family_builders):
        tracker = CompactionTracker(compact_after=1)
        RollupBuilder(store, clock, settings, tracker=tracker).fold_every_part(max_slots=1000)
        slot = slot_of(NOW - timedelta(days=3))
        key = StartKey(ids[2], NOW, "FI")
        assert store.claim_fold(slot, [key], 60) == store.claim_fold(slot, [], 60) == [key]
        # (what the builder sends when an IN read of the arrivals failed: one partition per request)
        store.read_arrivals([slot], range(settings.start_shards), per_partition=True)

    # ... more starts arrive, one of them late, and wait unfolded while readers count and list, with a tail of
    # minutes
    ingest_batch(
        [
            start_event("p1", uuid.uuid4(), NOW + timedelta(seconds=12), "FI"),
            start_event("p1", uuid.uuid4(), NOW - timedelta(hours=2), "US"),
        ],
        store=sessions,
        clock=clock,
        settings=settings,
        counted=seen_by_ingest,
    )
    seen_by_ingest.read_marks([StartKey(ids[3], NOW, "US")], per_partition=True)
    # (a session of three hours ago ends an hour ago, stored only now: its records land in rolled buckets)
    ingest_batch(
        [end_event("p1", ids[5], NOW - timedelta(hours=1))], store=sessions, clock=clock, settings=settings
    )
    clock.advance(minutes=5)
    live_ops = LiveOps(readers, *family_readers, clock, settings)
    live_ops.online()
    live_ops.session_lengths(24)
    for store in family_readers:
        store.read_arrivals_within([slot_of(NOW)], range(settings.start_shards), 100, per_partition=True)
        store.read_marks([StartKey(ids[3], NOW, "US")], per_partition=True)
    for hours in (1, 24, 8760):
        CountryStarts(readers, clock, settings).counts(hours)
    page = CountryStarts(readers, clock, settings).page("FI", 24, limit=3)
    CountryStarts(readers, clock, settings).page("FI", 24, limit=3, cursor=page.next_cursor)
    hour = Level.HOUR.floor(NOW)
    readers.edge_country_counts(hour, ["FI"], hour, hour + timedelta(minutes=1))
    readers.has_country_start_between("FI", NOW - timedelta(hours=2), NOW)
    readers.arrival_minutes_between(NOW - timedelta(hours=1), NOW + timedelta(hours=1), 10)
    # (what a reader sends when an IN read failed: the same partitions, one per request)
    slot = slot_of(NOW)
    readers.read_arrivals_within([slot], range(settings.start_shards), 100, per_partition=True)
    readers.read_marks([StartKey(ids[3], NOW, "US")], per_partition=True)
    # (the fold records a reader reads for a late start stored after ingest read the watermarks and the marks)
    readers.read_fold_records([fold_id(slot, 0)])
    readers.read_fold_records([fold_id(slot, 1)], per_partition=True)
    for rows in readers.country_hour_starts(
        [(hour - timedelta(hours=3), 1), (hour, None)], "FI", clock.now(), hour - timedelta(hours=5), 10
    ):
        list(rows)

    # ... and the player's history and the health check are read (player sessions' role)
    history = CassandraSessionStore(connection[routes.PLAYER_SESSIONS])
    assert len(last_completed_sessions("p1", 20, store=history, clock=clock, settings=settings)) == 3
    assert check_health(store=history, cache=NoCache()).cassandra.status == "up"

    # ... the player's data is exported, page by page, and the player erased (the privacy function's role)
    privacy = CassandraPlayerDataStore(connection[routes.PLAYER_DATA])
    page = export_player("p1", store=privacy, settings=settings, after=None, limit=20)
    export_player("p1", store=privacy, settings=settings, after=page.next_after, limit=20)
    receipt = erase_player("p1", store=privacy, cache=NoCache(), clock=clock, settings=settings)
    assert privacy.read_receipt(receipt.erasure_id) == receipt
    # (what it sends when an IN read of the sessions failed: one session per request, finding the same)
    one_by_one = privacy.read_sessions(ids[:3], per_partition=True)
    assert ids[2] in one_by_one and one_by_one == privacy.read_sessions(ids[:3])

    # ... and ingest discards a replay of the player's events, and takes out again a batch the erasure overtook:
    # one whose start a builder may have counted meanwhile (its arrival's slot settled), one it cannot have
    replay = [start_event("p1", ids[4], NOW - timedelta(minutes=3)), end_event("p1", ids[4], NOW)]
    assert ingest_batch(replay, store=sessions, clock=clock, settings=settings).discarded == 2
    for settle in (timedelta(0), timedelta(seconds=30)):
        overtaken = OvertakenByErasure(
            sessions,
            lambda: erase_player("p1", store=privacy, cache=NoCache(), clock=clock, settings=settings),
            clock,
            settle,
        )
        clock.advance(seconds=1)
        fresh = [start_event("p1", uuid.uuid4(), clock.now()), end_event("p1", uuid.uuid4(), clock.now())]
        assert ingest_batch(fresh, store=overtaken, clock=clock, settings=settings).discarded == 2
    # ... and deletes a history row written for a player erased after its check (the ends checked and kept)
    erase = lambda: erase_player("p1", store=privacy, cache=NoCache(), clock=clock, settings=settings)  # noqa: E731
    clock.advance(seconds=1)
    sid = uuid.uuid4()
    whole = [start_event("p1", sid, clock.now() - timedelta(seconds=1)), end_event("p1", sid, clock.now())]
    clock.advance(seconds=1)
    late = OvertakenByErasure(sessions, erase, clock, timedelta(0), after_history=True)
    assert ingest_batch(whole, store=late, clock=clock, settings=settings).completed_sessions == 0
    # (what ingest sends when an IN read of the erasure records failed: one player per request)
    assert set(sessions.erasures([settings.player_hash("p1")], per_partition=True)) == {
        settings.player_hash("p1")
    }
    # (and when an IN read of the sessions failed: one session per request, finding the same)
    one_by_one = sessions.read_sessions([sid, *ids[:3]], per_partition=True)
    assert ids[2] in one_by_one and one_by_one == sessions.read_sessions([sid, *ids[:3]])

    # ... and an invalidation that ingest's cache and the builder's lost is recorded, the readers whose Redis
    # failed meanwhile read it before their next lookup, and the builder of part 0 pays it, as
    # domain.cache_debt says
    CassandraCacheDebt(connection[routes.INGEST_EVENTS]).owe()
    for reader in (routes.PLAYER_SESSIONS, routes.COUNTRY_STARTS):
        assert CassandraCacheDebt(connection[reader]).unpaid() is not None
    debts = CassandraCacheDebt(connection[routes.ROLLUP_BUILDER])
    debts.owe()
    assert CacheDebtCollector(debts, NoCache()).collect()

    # Then each function sent exactly the statements the statement of access gives it
    for function, (_, recorder) in as_each_function.items():
        given = {statement.text for statement in FUNCTION_STATEMENTS[function]}
        assert recorder.statements() == given, function.name


class OvertakenByErasure:
    """Ingest's store, but the player is erased just after the batch's writes land, and the clock then moves
    on by ``settle`` (a slow request, whose arrival a builder may have folded by the time it checks); with
    ``after_history``, just after its history rows land instead (its events were checked and kept)."""

    def __init__(
        self, inner: CassandraSessionStore, erase, clock: FixedClock, settle: timedelta, after_history=False
    ) -> None:
        self._inner, self._erase, self._clock, self._settle = inner, erase, clock, settle
        self._after_history = after_history

    def write_events(self, writes, arrivals) -> None:
        self._inner.write_events(writes, arrivals)
        if not self._after_history:
            self._erase()

    def write_completed(self, sessions, records=()) -> None:
        self._inner.write_completed(sessions, records)
        if self._after_history:
            self._erase()

    def write_arrivals(self, arrivals) -> None:
        self._inner.write_arrivals(arrivals)

    def erasures(self, player_hashes, **options):
        found = self._inner.erasures(player_hashes, **options)
        if found:
            self._clock.advance(seconds=self._settle.total_seconds())
        return found

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def test_each_role_holds_exactly_its_derived_grants(cassandra_session, counts_settings, counts_connection):
    # Given the schema tool applied the counts keyspace (the fixture did)
    for function in FUNCTION_STATEMENTS:
        # When the role's permissions are listed
        rows = cassandra_session.execute(f"LIST ALL PERMISSIONS OF {role_of(function)} NORECURSIVE")
        held = {
            (row.permission, row.resource[len("<table ") : -1])
            for row in rows
            if row.resource.startswith(f"<table {counts_settings.keyspace}.")
        }
        # Then they are the grants derived from the function's statements, no more, no less
        assert held == expected_grants(counts_settings.keyspace, function), function.name
