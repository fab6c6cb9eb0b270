"""Each event is validated on its own, and every rejection names the field and the rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from player_sessions.models import EventType, InvalidEventError, SessionEvent, format_timestamp, parse_event

SAMPLE = {
    "player_id": "d6313e1fb7d247a6a034e2aadc30ab3f",
    "country": "PK",
    "event": "start",
    "session_id": "674606b1-2270-4285-928f-eef4a6b90a60",
    "ts": "2016-11-22T20:40:50",
}


def parsed_or_rejected(item: object) -> SessionEvent | InvalidEventError:
    """The event, or the rejection the parser raised; any other exception propagates and fails the test."""
    try:
        return parse_event(item)
    except InvalidEventError as error:
        return error


def with_(**changes):
    event = dict(SAMPLE)
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return event


def test_sample_line_parses_with_utc_assumed():
    # Given the specification's sample line, whose timestamp has no offset
    # When it is parsed
    event = parse_event(SAMPLE)
    # Then every field is typed, the timestamp taken as UTC
    assert event.event is EventType.START
    assert event.player_id == "d6313e1fb7d247a6a034e2aadc30ab3f"
    assert event.session_id == uuid.UUID("674606b1-2270-4285-928f-eef4a6b90a60")
    assert event.ts == datetime(2016, 11, 22, 20, 40, 50, tzinfo=UTC)
    assert event.country == "PK"


def test_offset_is_converted_to_utc_and_precision_cut_to_milliseconds():
    # Given a timestamp with a +02:00 offset and microseconds
    # When it is parsed
    event = parse_event(with_(ts="2026-11-28T11:15:30.250987+02:00"))
    # Then it is the same moment in UTC, to the millisecond
    assert event.ts == datetime(2026, 11, 28, 9, 15, 30, 250000, tzinfo=UTC)
    assert format_timestamp(event.ts) == "2026-11-28T09:15:30.250Z"


@pytest.mark.parametrize("ts", ["2026-01-02T03:04:05Z", "2026-01-02t03:04:05z"])
def test_zulu_suffix_is_accepted_in_either_case(ts):
    # Given a timestamp ending in Z (RFC 3339 allows a lower-case t and z)
    # When it is parsed
    event = parse_event(with_(ts=ts))
    # Then it is read as UTC
    assert event.ts == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_country_in_any_case_is_stored_upper_case():
    # Given a start with a lower-case country
    # When it is parsed
    event = parse_event(with_(country="pk"))
    # Then the country is upper case
    assert event.country == "PK"


def test_session_id_is_canonical_lower_case():
    # Given a session id in upper case
    # When it is parsed
    event = parse_event(with_(session_id="674606B1-2270-4285-928F-EEF4A6B90A60"))
    # Then it is the canonical lower-case UUID
    assert str(event.session_id) == "674606b1-2270-4285-928f-eef4a6b90a60"


@pytest.mark.parametrize(
    ("spelling", "accepted"),
    [
        ("674606b1-2270-4285-928f-eef4a6b90a60", True),
        ("674606b122704285928feef4a6b90a60", True),
        ("674606b1-2270-4285-928feef4a6b90a60", False),
        ("674606b12270-4285-928f-eef4a6b90a60", False),
        ("{674606b1-2270-4285-928f-eef4a6b90a60}", False),
        ("urn:uuid:674606b1-2270-4285-928f-eef4a6b90a60", False),
    ],
)
def test_session_id_is_the_dashed_form_or_32_hex_digits_and_nothing_between(spelling, accepted):
    # Given a session id in one spelling
    # When it is parsed
    result = parsed_or_rejected(with_(session_id=spelling))
    # Then the two documented forms are the same session, and a partly dashed one is refused, naming the field
    if accepted:
        assert str(result.session_id) == "674606b1-2270-4285-928f-eef4a6b90a60"
    else:
        assert isinstance(result, InvalidEventError) and "session_id" in str(result)


def test_country_is_ignored_on_end_events():
    # Given an end event carrying a country that is not one
    # When it is parsed
    event = parse_event(with_(event="end", country="not a country"))
    # Then it is an end, without a country
    assert event.event is EventType.END
    assert event.country is None


def test_unknown_fields_are_ignored():
    # Given an event with fields the service does not know
    # When it is parsed
    event = parse_event(with_(platform="ios", build=42))
    # Then it parses as if they were absent
    assert event.player_id == SAMPLE["player_id"]


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        (with_(event="pause"), "event", 'must be "start" or "end"'),
        (with_(event=...), "event", "required"),
        (with_(player_id="has space"), "player_id", "printable ASCII characters without whitespace"),
        (with_(player_id="x" * 65), "player_id", "1 to 64"),
        (with_(player_id=""), "player_id", "1 to 64"),
        (with_(player_id="pl\u00e4yer"), "player_id", "printable ASCII"),
        (with_(player_id=12), "player_id", "must be a string, got a number"),
        (with_(session_id="not-a-uuid"), "session_id", "must be a UUID"),
        (with_(session_id=...), "session_id", "required"),
        (with_(ts="yesterday"), "ts", "ISO 8601"),
        (with_(ts="2016-11-22"), "ts", "ISO 8601 date-time"),
        (with_(ts=1479847250), "ts", "got a number"),
        (with_(ts="2016-13-22T20:40:50"), "ts", "ISO 8601"),
        (with_(country=...), "country", "required on start"),
        (with_(country="PAK"), "country", "two letters"),
        (with_(country="P1"), "country", "two letters"),
    ],
)
def test_each_rule_names_its_field(event, field, reason):
    # Given an event that breaks one rule
    # When it is parsed / Then the rejection names the field and the rule
    with pytest.raises(InvalidEventError) as caught:
        parse_event(event)
    assert caught.value.field == field
    assert reason in caught.value.problems[field]
    assert caught.value.reason.startswith(f"{field}: ")


def test_every_broken_field_is_reported_at_once():
    # Given a start missing three fields and with an unreadable timestamp
    # When it is parsed / Then one rejection reports all four fields
    with pytest.raises(InvalidEventError) as caught:
        parse_event({"event": "start", "ts": "soon"})
    assert set(caught.value.problems) == {"player_id", "session_id", "ts", "country"}
    # and the one field an answer names is the first of them in the event's field order, the reason lists all
    assert caught.value.field == "player_id"
    assert list(caught.value.problems) == ["player_id", "session_id", "ts", "country"]
    assert caught.value.reason.startswith("player_id: ")


@pytest.mark.parametrize("item", [[], "start", 7, None, True])
def test_an_item_that_is_not_an_object_is_rejected(item):
    # Given a batch item that is not a JSON object
    # When it is parsed / Then it is rejected for that reason
    with pytest.raises(InvalidEventError, match="must be a JSON object"):
        parse_event(item)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


@given(item=json_values)
def test_any_json_value_either_parses_or_is_rejected_with_a_reason(item):
    # Given any JSON value
    # When it is parsed
    outcome = parsed_or_rejected(item)
    # Then it is a rejection giving a reason for each field it names, or an event stamped in UTC
    if isinstance(outcome, InvalidEventError):
        assert outcome.problems and all(outcome.problems.values())
    else:
        assert outcome.ts.tzinfo is UTC


@given(
    fields=st.fixed_dictionaries(
        {
            "event": st.sampled_from(["start", "end"]),
            "player_id": st.text(max_size=70),
            "session_id": st.one_of(st.uuids().map(str), st.text(max_size=40)),
            "ts": st.one_of(st.datetimes().map(datetime.isoformat), st.text(max_size=30)),
            "country": st.text(max_size=3),
        }
    )
)
def test_event_like_objects_never_crash_the_parser(fields):
    # Given an object with an event's fields, holding random values
    # When it is parsed
    outcome = parsed_or_rejected(json.loads(json.dumps(fields)))
    # Then it parses, or is rejected naming only an event's fields
    if isinstance(outcome, InvalidEventError):
        assert set(outcome.problems) <= {"event", "player_id", "session_id", "ts", "country"}
