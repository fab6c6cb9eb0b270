"""A player's erasure on the real Cassandra and Redis: afterwards no row of any table and no cache entry holds
the player's id (every table of the keyspace read whole, every key of the cache database read); replays are
discarded, later events stored; a second erasure changes nothing and has its own receipt; an erasure stopped
half way (killed, or out of time) completes when asked again; a batch in flight during the erasure is taken
out again, and so is a history row written after an erasure began."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from player_sessions.clock import FixedClock
from player_sessions.domain import privacy
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.live_ops import LiveOps
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.domain.privacy import erase_player, export_player
from player_sessions.models import SessionHalves
from player_sessions.repositories.cassandra_player_data import CassandraPlayerDataStore
from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
from player_sessions.repositories.cassandra_store import WRITE_COMPLETED
from player_sessions.repositories.player_rows import DELETE_COMPLETED
from player_sessions.repositories.redis_cache import RedisReadCache
from player_sessions.schema import COMPLETIONS, LENGTHS, TABLES
from tests.fakes import OnceAfter
from tests.integration.test_ingest_on_cassandra import end_event, start_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 2, 9, 45, 10, 500_000, tzinfo=UTC)


class World:
    """The stores, cache and clock of one test, and the player's sessions."""

    def __init__(self, stores, connection, settings, redis_connection) -> None:
        self.sessions, self.starts = stores
        self.connection = connection
        self.settings = settings
        self.player_data = CassandraPlayerDataStore(connection)
        self.redis = redis_connection
        self.cache = RedisReadCache(redis_connection, namespace=f"privacy-test:{uuid.uuid4().hex}")
        self.clock = FixedClock(NOW)

    def ingest(self, events: list[dict[str, Any]]) -> Any:
        outcome = None
        for first in range(0, len(events), 10):
            outcome = ingest_batch(
                events[first : first + 10],
                store=self.sessions,
                clock=self.clock,
                settings=self.settings,
                cache=self.cache,
            )
        return outcome

    def play(self, player: str, sessions: int, country: str = "FI") -> tuple[list[uuid.UUID], list[dict]]:
        ids = [uuid.uuid4() for _ in range(sessions)]
        events = []
        for n, sid in enumerate(ids):
            start = self.clock.now() - timedelta(hours=2, minutes=n)
            events += [
                start_event(player, sid, start, country),
                end_event(player, sid, start + timedelta(seconds=30)),
            ]
        self.ingest(events)
        return ids, events

    def erase(self, player: str, **options: Any) -> privacy.ErasureReceipt:
        return erase_player(
            player,
            store=self.player_data,
            cache=self.cache,
            clock=self.clock,
            settings=self.settings,
            **options,
        )

    def read_everything(self) -> Iterator[tuple[str, str]]:
        """(where, text) of every cell of every table and every key and value of the cache's database."""
        session = self.connection.session()
        for table in TABLES:
            columns = ", ".join(column.name for column in table.columns)
            for row in session.execute(f"SELECT {columns} FROM {self.settings.keyspace}.{table.name}"):
                for column, value in zip(table.columns, row, strict=True):
                    yield f"{table.name}.{column.name}", repr(value)
        client = self.redis.client()
        for key in client.scan_iter(count=1000):
            yield "cache key", key.decode(errors="replace")
            if client.type(key) == b"string":
                yield "cache value", (client.get(key) or b"").decode(errors="replace")

    def holding(self, text: str) -> list[str]:
        return sorted({where for where, value in self.read_everything() if text in value})

    def counts(self, hours: int = 24) -> dict[str, int]:
        return dict(CountryStarts(self.starts, self.clock, self.settings, self.cache).counts(hours).counts)

    def listed(self, country: str = "FI") -> list[str]:
        page = CountryStarts(self.starts, self.clock, self.settings, self.cache).page(country, 24, limit=1000)
        return [row.player_id for row in page.starts]

    def history(self, player: str) -> list[uuid.UUID]:
        found = last_completed_sessions(
            player, 20, store=self.sessions, clock=self.clock, settings=self.settings, cache=self.cache
        )
        return [s.session_id for s in found]


@pytest.fixture
def world(counts_stores, counts_connection, counts_settings, redis_connection) -> World:
    return World(counts_stores, counts_connection, counts_settings, redis_connection)


def fresh_player() -> str:
    return f"erase-me-{uuid.uuid4().hex}"


def test_after_an_erasure_no_row_of_any_table_and_no_cache_entry_holds_the_player(world):
    # Given a player with sessions, half of them folded into the rollups, cached in their history and in the
    # listing, and another player in the same country
    player, other = fresh_player(), fresh_player()
    world.play(player, 6)
    world.clock.advance(seconds=10)
    RollupBuilder(world.starts, world.clock, world.settings, cache=world.cache).fold_every_part(
        max_slots=1000
    )
    theirs, _ = world.play(other, 2)
    assert world.history(player) and player in world.listed()
    counts_before = world.counts()
    assert world.holding(player)  # the check below can see the player
    # When the player is erased
    receipt = world.erase(player)
    # Then no cell of any table and no cache key or value holds their id
    assert world.holding(player) == []
    # And the receipt says what went, per store
    assert receipt.finished and receipt.finished_at == world.clock.now()
    assert receipt.deleted_rows == {
        "sessions": 6,
        "completed_sessions_by_player": 6,
        "player_writes": 18,  # per session: its start, its end, the start's arrival
    }
    assert receipt.player_id_removed == {"session_starts": 6, "start_arrivals": 6}
    assert receipt.cache_keys_deleted and receipt.cache_keys_deleted >= 2
    # And the other player is untouched, the counts keep the erased starts, the listing and history drop them
    assert world.history(other) == theirs
    assert world.counts() == counts_before == {"FI": 8}
    assert world.listed() == [other, other]
    assert world.history(player) == []
    assert (
        export_player(player, store=world.player_data, settings=world.settings, after=None, limit=10).sessions
        == []
    )
    # And reading their (empty) history and export afterwards leaves nothing that holds their id either
    assert world.holding(player) == []


def test_the_export_says_which_sessions_are_in_the_history(world):
    # Given a player with two completed sessions and one still open
    player = fresh_player()
    completed, _ = world.play(player, 2)
    still_open = uuid.uuid4()
    world.ingest([start_event(player, still_open, NOW - timedelta(minutes=3))])
    # When the player's data is exported
    export = export_player(player, store=world.player_data, settings=world.settings, after=None, limit=10)
    # Then each session is listed once, completed only where it is in the history, the open one with its start
    assert {s.session_id: s.completed for s in export.sessions} == {
        completed[0]: True,
        completed[1]: True,
        still_open: False,
    }
    opened = next(s for s in export.sessions if s.session_id == still_open)
    assert opened.halves is not None
    assert (opened.halves.start_ts, opened.halves.end_ts) == (NOW - timedelta(minutes=3), None)


def test_a_replayed_batch_is_discarded_and_a_later_event_is_stored(world):
    # Given an erased player
    player = fresh_player()
    _, events = world.play(player, 3)
    world.clock.advance(seconds=5)
    receipt = world.erase(player)
    counts_after_erasure = world.counts()
    # When the game client re-sends the old batch
    outcome = world.ingest(events)
    # Then every event is discarded, saying why, and nothing holds the player again
    assert (outcome.stored, outcome.discarded) == (0, 6)
    assert {p.field for p in outcome.problems} == {"player_id"}
    assert all("erased" in p.reason for p in outcome.problems)
    assert world.holding(player) == []
    assert world.counts() == counts_after_erasure
    # When the player plays again, after the erasure
    world.clock.advance(seconds=5)
    new = uuid.uuid4()
    later = world.ingest(
        [start_event(player, new, world.clock.now()), end_event(player, new, world.clock.now())]
    )
    # Then the new session is stored, listed and in the history
    assert later.stored == 2
    assert world.history(player) == [new]
    assert world.listed().count(player) == 1
    # And an event stamped at the erasure's very instant still counts as before it
    edge = world.ingest([start_event(player, uuid.uuid4(), receipt.asked_at)])
    assert (edge.stored, edge.discarded) == (0, 1)


def test_a_second_erasure_is_a_no_op_with_its_own_receipt(world):
    # Given an erased player
    player = fresh_player()
    world.play(player, 2)
    first = world.erase(player)
    world.clock.advance(seconds=1)
    # When they are erased again
    second = world.erase(player)
    # Then the second has its own receipt and removed nothing, and both receipts read back as they were
    assert second.erasure_id != first.erasure_id and second.finished
    assert sum(second.deleted_rows.values()) == 0 and sum(second.player_id_removed.values()) == 0
    assert world.player_data.read_receipt(first.erasure_id) == first
    assert world.player_data.read_receipt(second.erasure_id) == second
    # And later replays are judged by the latest erasure
    assert world.player_data.erasure_record(world.settings.player_hash(player)) == (
        second.asked_at,
        second.erasure_id,
    )


class DiesAfter:
    """The real store, but the process dies (its request fails) at the ``steps``-th step of erasing sessions."""

    def __init__(self, inner: CassandraPlayerDataStore, steps: int) -> None:
        self._inner = inner
        self._left = steps

    def erase_sessions(self, *args: Any) -> None:
        self._left -= 1
        if self._left < 0:
            raise RuntimeError("the function's environment died")
        self._inner.erase_sessions(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_an_erasure_killed_half_way_completes_when_asked_again(world, monkeypatch):
    # Given a player with ten sessions, erased two sessions per step, and a function that dies at the third
    player = fresh_player()
    world.play(player, 10)
    monkeypatch.setattr(privacy, "SESSIONS_PER_STEP", 2)
    with pytest.raises(RuntimeError):
        erase_player(
            player,
            store=DiesAfter(world.player_data, 2),
            cache=world.cache,
            clock=world.clock,
            settings=world.settings,
        )
    # Then part of the player is gone, part still there, and the receipt says in progress
    assert world.holding(player)
    killed = world.player_data.erasure_record(world.settings.player_hash(player))
    assert killed is not None
    assert not world.player_data.read_receipt(killed[1]).finished
    # When the erasure is asked again
    world.clock.advance(seconds=1)
    again = world.erase(player)
    # Then it completes: nothing holds the player, and the first receipt names the erasure that finished it
    assert again.finished and world.holding(player) == []
    assert again.deleted_rows["sessions"] == 6
    assert world.player_data.read_receipt(killed[1]).completed_by == again.erasure_id


def test_an_erasure_out_of_time_stops_with_its_receipt_in_progress_and_a_retry_resumes(world, monkeypatch):
    # Given a player with six sessions, and a function with time for one step of two
    player = fresh_player()
    world.play(player, 6)
    monkeypatch.setattr(privacy, "SESSIONS_PER_STEP", 2)
    time_left = iter([60.0, 1.0])
    stopped = world.erase(player, seconds_left=lambda: next(time_left))
    # Then it stops before the second step, in progress
    assert not stopped.finished and stopped.finished_at is None and stopped.deleted_rows["sessions"] == 2
    assert world.player_data.read_receipt(stopped.erasure_id) == stopped
    # When asked again with time enough, it finishes the rest
    again = world.erase(player)
    assert again.finished and again.deleted_rows["sessions"] == 4 and world.holding(player) == []
    assert world.player_data.read_receipt(stopped.erasure_id).completed_by == again.erasure_id


@pytest.mark.parametrize(
    ("erased_after", "outcome_of_batch", "counted"),
    [
        # its writes land just before the erasure reads the player's index: taken out again, uncounted
        ("write_events", {"stored": 0, "discarded": 2, "completed_sessions": 0}, {}),
        # the erasure writes its record and reads the player's history just after the batch's check and before
        # its history row (the client's last end, sent as the player asks for erasure): the row is deleted
        # again, the session erased as the erasure found it (its start stays counted, without the player)
        ("erasures", {"stored": 2, "discarded": 0, "completed_sessions": 0}, {"FI": 1}),
    ],
    ids=["after the event writes", "between the check and the history row"],
)
def test_a_batch_in_flight_during_the_erasure_leaves_nothing_naming_the_player(
    world, erased_after, outcome_of_batch, counted
):
    # Given a player, and a batch of theirs that completes a session, in flight as the player is erased
    player = fresh_player()
    sid = uuid.uuid4()
    events = [start_event(player, sid, NOW - timedelta(minutes=1)), end_event(player, sid, NOW)]
    world.clock.advance(seconds=1)
    store = OnceAfter(world.sessions, erased_after, lambda: world.erase(player))
    # When the batch completes
    outcome = ingest_batch(events, store=store, clock=world.clock, settings=world.settings, cache=world.cache)
    # Then it reports what it kept, no row or history holds the player, and the counts are as the erasure left them
    assert {name: getattr(outcome, name) for name in outcome_of_batch} == outcome_of_batch
    assert world.history(player) == []
    assert world.holding(player) == []
    assert world.counts() == counted


def test_the_erasure_records_of_many_players_read_in_hundreds_or_one_by_one_agree(world):
    # Given three erased players among 150 a batch could name (more than one IN read of 100 holds)
    erased = [fresh_player() for _ in range(3)]
    for player in erased:
        world.play(player, 1)
        world.erase(player)
    others = [fresh_player() for _ in range(147)]
    hashes = [world.settings.player_hash(player) for player in others[:70] + erased + others[70:]]
    # When ingest reads their records, by IN, and one player per request (its fallback)
    grouped = world.sessions.erasures(hashes)
    one_each = world.sessions.erasures(hashes, per_partition=True)
    # Then both find exactly the erased three, at the time of their erasure
    assert grouped == one_each
    assert set(grouped) == {world.settings.player_hash(player) for player in erased}
    assert set(grouped.values()) == {NOW}


def test_a_session_open_at_the_erasure_is_still_closed_by_its_end_arriving_after_it(world):
    # Given a player with a session started and not ended, counted by the builder, beside another player's
    player, other = fresh_player(), fresh_player()
    sid, others = uuid.uuid4(), uuid.uuid4()
    world.ingest(
        [
            start_event(player, sid, NOW - timedelta(minutes=5), "QE"),
            start_event(other, others, NOW - timedelta(minutes=4), "QE"),
        ]
    )
    shards = world.settings.start_shards
    families = [CassandraRollupStore(world.connection, shards, family) for family in (COMPLETIONS, LENGTHS)]
    live_ops = LiveOps(world.starts, *families, world.clock, world.settings)

    def fold_everything() -> None:
        world.clock.advance(seconds=10)
        for store in (world.starts, *families):
            RollupBuilder(store, world.clock, world.settings).fold_every_part(max_slots=1000)

    fold_everything()
    assert live_ops.online().counts == [("QE", 2)]
    # When the player is erased
    receipt = world.erase(player)
    # Then no row holds the player's id, and the open session kept its start, without the player
    assert world.holding(player) == []
    assert (receipt.deleted_rows["sessions"], receipt.player_id_removed["sessions"]) == (0, 1)
    assert world.sessions.read_sessions([sid]) == {
        sid: SessionHalves(sid, None, "QE", NOW - timedelta(minutes=5), None)
    }
    # When the session's end, stamped after the erasure, arrives (the game client still sends it)
    world.clock.advance(seconds=1)
    ended = world.clock.now()
    assert world.ingest([end_event(player, sid, ended)]).stored == 1
    fold_everything()
    # Then the session is no longer online, and its length is counted; the player has no history
    assert live_ops.online().counts == [("QE", 1)]
    assert live_ops.session_lengths(24).total.sessions == 1
    assert world.history(player) == []
    # And the player's export shows the end they sent since, not the erased start
    export = export_player(player, store=world.player_data, settings=world.settings, after=None, limit=10)
    assert [(s.session_id, s.halves) for s in export.sessions] == [
        (sid, SessionHalves(sid, None, None, None, ended))
    ]


def test_an_end_met_while_the_erasure_runs_writes_no_history_row_for_the_erased_start(world):
    # Given a player's open session, and an erasure that has written its record but not yet reached the
    # session (a heavy player's erasure takes seconds)
    player = fresh_player()
    sid = uuid.uuid4()
    world.ingest([start_event(player, sid, NOW - timedelta(minutes=5))])
    player_hash = world.settings.player_hash(player)
    world.player_data.write_erasure_record(player_hash, NOW, uuid.uuid4(), world.settings.retention_seconds)
    # When the session's end, stamped after the erasure, arrives meanwhile
    world.clock.advance(seconds=1)
    assert world.ingest([end_event(player, sid, world.clock.now())]).stored == 1
    # Then no completed session names the player (its start is erased data), and once the erasure has run,
    # no row holds them
    assert world.history(player) == []
    world.erase(player)
    assert world.holding(player) == []


def test_cassandras_warning_about_an_erased_players_rows_is_logged_without_the_player_id(
    counts_connection, counts_stores, caplog
):
    # Given a player whose 1,100 history rows were deleted one by one, as an erasure deletes them: more
    # tombstones than Cassandra reads without a warning (tombstone_warn_threshold, 1,000), and the warning
    # quotes the query with its values
    player = f"erased-{uuid.uuid4().hex}"
    session = counts_connection.session()
    insert = counts_connection.prepare(WRITE_COMPLETED.text)
    delete = counts_connection.prepare(DELETE_COMPLETED.text)
    rows = [(NOW - timedelta(seconds=i), uuid.uuid4()) for i in range(1_100)]
    execute_concurrent_with_args(
        session, insert, [(player, end, sid, end - timedelta(minutes=5), "US", 3_600) for end, sid in rows]
    )
    execute_concurrent_with_args(session, delete, [(player, end, sid) for end, sid in rows])
    # When the service reads the player's history
    with caplog.at_level(logging.WARNING, logger="cassandra.protocol"):
        assert CassandraPlayerDataStore(counts_connection).completed_of(player) == []
    # Then Cassandra's warning reaches the log, its query without the player's id
    warnings = [record.getMessage() for record in caplog.records if record.name == "cassandra.protocol"]
    assert any("tombstone" in warning and "player_id = ?" in warning for warning in warnings), warnings
    assert not [warning for warning in warnings if player in warning]
