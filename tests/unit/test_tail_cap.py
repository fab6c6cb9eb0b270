"""A reader's cost when the builders are far behind: the unfolded tail is read up to a cap, oldest first, and the
answer says from which arrival time on starts may be missing (domain.country_starts.window)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.read_counts import metered
from player_sessions.settings import Settings
from tests.fakes import InMemorySessionStore, InMemoryStartsStore

T0 = datetime(2026, 3, 30, 7, 13, 0, tzinfo=UTC)
COUNTRIES = ["US", "FI", "PK"]


def stored_seconds(seconds: int, per_second: int, settings: Settings):
    """Starts stamped and stored ``per_second`` a second for ``seconds`` from T0, never folded."""
    sessions = InMemorySessionStore()
    starts = InMemoryStartsStore(sessions)
    clock = FixedClock(T0)
    sent: list[tuple[str, datetime, str]] = []
    for second in range(seconds):
        clock.moment = T0 + timedelta(seconds=second)
        batch = [
            {
                "event": "start",
                "player_id": "p",
                "session_id": str(uuid.uuid4()),
                "ts": clock.moment.isoformat(),
                "country": COUNTRIES[(second + n) % len(COUNTRIES)],
            }
            for n in range(per_second)
        ]
        ingest_batch(batch, store=sessions, clock=clock, settings=settings)
        sent += [(e["session_id"], clock.moment, e["country"]) for e in batch]
    return starts, clock, sent


def test_a_short_tail_is_read_whole_and_the_answer_is_exact():
    # Given 50 seconds of unfolded starts, under the default cap
    settings = Settings()
    starts, clock, sent = stored_seconds(50, 3, settings)
    clock.moment = T0 + timedelta(seconds=60)
    # When counted
    counts = CountryStarts(starts, clock, settings).counts(1)
    # Then exactly, and not said to be partial
    assert counts.unread_from is None
    assert dict(counts.counts) == dict(Counter(country for _, _, country in sent))


def test_a_tail_past_the_cap_keeps_the_oldest_whole_seconds_that_fit_and_says_from_when():
    # Given 250 seconds of unfolded starts, 3 a second, and readers allowed 100 unfolded arrivals
    settings = Settings(tail_arrivals_read_at_most=100)
    starts, clock, sent = stored_seconds(250, 3, settings)
    clock.moment = T0 + timedelta(seconds=260)
    # When counted, and one country listed
    with metered() as reads:
        counts = CountryStarts(starts, clock, settings).counts(1)
    page = CountryStarts(starts, clock, settings).page("US", 1, limit=1000)
    # Then the oldest 33 seconds (99 arrivals) are kept, the 34th would not fit, and nothing after it is read:
    # the counts are the starts that arrived before it, and the answer says from when starts may be missing
    cut = T0 + timedelta(seconds=33)
    assert counts.unread_from == cut
    assert dict(counts.counts) == dict(Counter(country for _, ts, country in sent if ts < cut))
    assert sum(starts for _, starts in counts.counts) == 99
    assert 99 + 2 <= reads.rows < 99 + 2 + 10
    # and the page lists every start stamped after the rollups' cutoff (here all), saying it may miss late ones
    assert page.unread_from == cut
    assert {str(row.session_id) for row in page.starts} == {sid for sid, _, c in sent if c == "US"}


def test_once_the_builders_catch_up_the_answer_is_exact_again():
    # Given the long tail of the previous test, folded
    settings = Settings(tail_arrivals_read_at_most=100)
    starts, clock, sent = stored_seconds(250, 3, settings)
    clock.moment = T0 + timedelta(seconds=260)
    RollupBuilder(starts, clock, settings).fold_every_part(max_slots=10_000)
    # When counted
    counts = CountryStarts(starts, clock, settings).counts(1)
    # Then exactly
    assert counts.unread_from is None
    assert dict(counts.counts) == dict(Counter(country for _, _, country in sent))


def test_the_http_answers_say_partial_only_when_the_tail_was_cut(monkeypatch):
    from pathlib import Path

    from functions.country_starts.handler import lambda_handler
    from player_sessions.bootstrap import Services, use_services
    from player_sessions.repositories.cache_protocol import NoCache
    from player_sessions_local.gateway.in_process import LocalLambdaContext

    events = Path(__file__).resolve().parents[2] / "events"

    def answers(settings: Settings, seconds: int) -> list[dict]:
        starts, clock, _ = stored_seconds(seconds, 3, settings)
        clock.moment = T0 + timedelta(seconds=seconds + 10)
        services = Services(settings, clock, InMemorySessionStore(starts.db), starts, NoCache(), None)
        bodies = []
        with use_services(services):
            for name in ("country_starts_counts", "country_starts_page"):
                event = json.loads((events / f"{name}.json").read_text())
                response = lambda_handler(event, LocalLambdaContext(function_name=name))
                assert response["statusCode"] == 200
                bodies.append(json.loads(response["body"]))
        return bodies

    # Given a long unfolded tail and a small cap, then a short one: the two routes' answers
    cut = answers(Settings(tail_arrivals_read_at_most=100), 250)
    whole = answers(Settings(), 50)
    # Then the cut answers carry why and from when; the whole ones carry no such field
    expected = {
        "reason": "the rollup builders are behind: recent arrivals not read",
        "arrived_before": "2026-03-30T07:13:33Z",
    }
    assert [body["partial"] for body in cut] == [expected, expected]
    assert cut[0]["total"] == 99
    assert all("partial" not in body for body in whole)
    assert whole[0]["total"] == 150
