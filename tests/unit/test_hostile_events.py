"""Generated hostile events fed to the ingest path (hypothesis): no exception escapes, every item of a batch is
accounted for once (stored, or named with its index, field and reason), and every valid event is stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player_sessions.clock import FixedClock
from player_sessions.domain.ingest import ingest_batch
from player_sessions.settings import Settings
from tests.fakes import InMemorySessionStore
from tests.property_depth import examples

NOW = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
SETTINGS = Settings()
FIELDS = ("event", "player_id", "session_id", "ts", "country")

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=80),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
hostile_timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00", "2026-02-30T10:00:00Z"]),
    st.text(alphabet="0123456789-:TZ+. ", max_size=40),
)
hostile_values = {
    "event": st.one_of(st.sampled_from(["start", "end", "START", "pause", ""]), json_values),
    "player_id": st.one_of(st.text(max_size=300), json_values),
    "session_id": st.one_of(st.uuids().map(str), st.text(max_size=40), json_values),
    "ts": st.one_of(hostile_timestamps, json_values),
    "country": st.one_of(st.text(max_size=4), json_values),
}


@st.composite
def valid_events(draw) -> dict:
    kind = draw(st.sampled_from(["start", "end"]))
    event = {
        "event": kind,
        "player_id": draw(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)),
        "session_id": str(draw(st.uuids())),
        "ts": (NOW - draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=300)))).isoformat(),
    }
    if kind == "start":
        event["country"] = draw(st.from_regex(r"[A-Za-z]{2}", fullmatch=True))
    return event


@st.composite
def hostile_items(draw) -> object:
    """An event with some fields replaced, removed or added, or not an event at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    event = draw(valid_events())
    for name in draw(st.sets(st.sampled_from(FIELDS), min_size=1)):
        if draw(st.booleans()):
            event[name] = draw(hostile_values[name])
        else:
            event.pop(name, None)
    if draw(st.booleans()):
        event[draw(st.text(max_size=10))] = draw(json_values)
    return event


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), valid_events(), hostile_items()), min_size=1, max_size=12))
def test_hostile_items_never_escape_and_never_cost_a_valid_event(choices):
    batch = [good if is_good else hostile for is_good, good, hostile in choices]
    good_indices = [index for index, (is_good, _, _) in enumerate(choices) if is_good]
    store = InMemorySessionStore()
    # When the batch is ingested (an exception escaping fails the test)
    outcome = ingest_batch(batch, store=store, clock=FixedClock(NOW), settings=SETTINGS)
    # Then every item is accounted for once, each problem names its item, a field and a reason
    named = [problem.index for problem in outcome.problems]
    assert outcome.stored + outcome.discarded + outcome.rejected == len(batch)
    assert len(named) == len(set(named)) == outcome.discarded + outcome.rejected
    assert all(0 <= p.index < len(batch) and p.field and p.reason for p in outcome.problems)
    # and every valid event is stored (none is older than the retention nor in the future)
    assert not set(good_indices) & set(named)
    for index in good_indices:
        assert uuid.UUID(batch[index]["session_id"]) in store.sessions
