"""The loader and the generator, on the real Cassandra: what is stored, what is reported, and that a re-run
changes nothing."""

from __future__ import annotations

import bz2
import gzip
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.bootstrap import build_services
from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.records import LATE, countries_only
from player_sessions.domain.country_starts.rollups import bucket_state
from player_sessions.domain.country_starts.window import read_tail
from player_sessions.time_buckets import Bucket, Level
from player_sessions_local.generate import generate_events
from player_sessions_local.load import build_rollups, load_file

pytestmark = pytest.mark.integration

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def write_events(path, lines: list[str]) -> None:
    opener = bz2.open if path.suffix == ".bz2" else gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.bz2"])
def test_loader_stores_rebased_events_reports_rejects_and_is_safe_to_rerun(
    tmp_path, counts_connection, counts_settings, counts_stores, suffix
):
    # Given generated events from 2016 (as the assignment's), plus a line that is not JSON and a bad event
    events = list(generate_events(300, seed=5, end=datetime(2016, 11, 22, 20, 40, 50, tzinfo=UTC), days=2))
    lines = [json.dumps(e) for e in events]
    lines.insert(10, "{not json")
    lines.insert(
        20, json.dumps({"event": "start", "player_id": "bad id", "session_id": "x", "ts": "2016-11-22"})
    )
    path = tmp_path / f"events{suffix}"
    write_events(path, lines)
    rejects = tmp_path / "rejects.jsonl"
    services = build_services(
        counts_settings.model_copy(update={"cache_enabled": False}), FixedClock(NOW), counts_connection
    )
    # When it is loaded with --rebase-to-now, twice
    first = load_file(path, services, rebase_to_now=True, rejects_path=rejects, workers=3, progress=False)
    second = load_file(path, services, rebase_to_now=True, rejects_path=rejects, workers=3, progress=False)
    # Then every valid event is stored, the two bad lines are reported with their line numbers and reasons
    assert (first.lines, first.stored, first.rejected, first.discarded) == (len(lines), len(events), 2, 0)
    reported = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in reported] == [(11, "rejected"), (21, "rejected")]
    assert reported[0]["reason"].startswith("not JSON")
    assert "player_id" in reported[1]["reason"] and "session_id" in reported[1]["reason"]
    # And the newest event now sits at "now"; the counts equal the distinct starts of the file, rebased
    assert (second.stored, second.rejected) == (first.stored, first.rejected)
    shift = NOW - max(datetime.fromisoformat(e["ts"]).replace(tzinfo=UTC) for e in events)
    expected = Counter()
    for _sid, country, ts in {
        (e["session_id"], e["country"], e["ts"]) for e in events if e["event"] == "start"
    }:
        if datetime.fromisoformat(ts).replace(tzinfo=UTC) + shift >= NOW - timedelta(hours=72):
            expected[country] += 1
    counts = CountryStarts(services.starts, services.clock, services.settings).counts(72)
    assert dict(counts.counts) == dict(expected)


def test_loader_processes_with_chunks_in_flight_store_every_start_and_fold_them_at_the_end(
    tmp_path, counts_connection, counts_settings, counts_stores
):
    # Given 3,000 generated events of the two days before a moment no other test writes at
    now = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    events = list(generate_events(3000, seed=11, end=now - timedelta(hours=1), days=2))
    path = tmp_path / "events.jsonl.gz"
    write_events(path, [json.dumps(e) for e in events])
    clock = FixedClock(now)
    services = build_services(
        counts_settings.model_copy(update={"cache_enabled": False}), clock, counts_connection
    )
    before = dict(CountryStarts(services.starts, clock, services.settings).counts(72).counts)
    # When two worker processes load it, three chunks at once each, and the arrivals are folded afterwards
    report = load_file(
        path,
        services,
        rebase_to_now=False,
        rejects_path=None,
        progress=False,
        processes=2,
        chunks_in_flight=3,
    )
    clock.advance(seconds=5)
    build_rollups(services)
    # Then every event is stored
    assert (report.lines, report.stored, report.rejected, report.discarded) == (
        len(events),
        len(events),
        0,
        0,
    )
    starts = {
        (e["session_id"], e["country"], datetime.fromisoformat(e["ts"]).replace(tzinfo=UTC))
        for e in events
        if e["event"] == "start"
    }
    # And the rollup of a whole day of the file is stored before any request asked for it, with that day's
    # distinct starts, and nothing is left to the readers' tail
    day = Bucket(Level.DAY, Level.DAY.floor(now - timedelta(days=1)))
    in_day = Counter(country for _, country, ts in starts if day.contains(ts))
    rows = services.starts.read_rollups([day])
    day_counts = bucket_state(rows[day]).counts
    assert sum(in_day.values()) > 0 and countries_only(day_counts) == in_day
    # (each of them stored a day after its ts: late, and counted as such)
    assert day_counts[LATE] == sum(in_day.values())
    assert (
        read_tail(services.starts, clock.now() - timedelta(seconds=3), services.settings.partition).arrivals
        == []
    )
    # And the counts grew by exactly the file's distinct starts, country by country
    added = Counter(country for _, country, _ in starts)
    after = dict(CountryStarts(services.starts, clock, services.settings).counts(72).counts)
    countries = set(after) | set(added)
    assert {c: after.get(c, 0) - before.get(c, 0) for c in countries} == {c: added[c] for c in countries}


def test_generator_is_deterministic_and_realistic():
    end = datetime(2026, 11, 1, tzinfo=UTC)
    first = list(generate_events(20000, seed=9, end=end, days=7))
    assert first == list(generate_events(20000, seed=9, end=end, days=7))
    kinds = Counter(e["event"] for e in first)
    starts = {e["session_id"] for e in first if e["event"] == "start"}
    ends = {e["session_id"] for e in first if e["event"] == "end"}
    countries = Counter(e["country"] for e in first if e["event"] == "start")
    lines = Counter(json.dumps(e, sort_keys=True) for e in first)
    assert 0.4 < kinds["start"] / len(first) < 0.6
    assert starts - ends and ends - starts  # unfinished sessions, and end-only events
    assert sum(1 for n in lines.values() if n > 1) > 0  # exact duplicates (retries)
    assert len(countries) > 40 and countries.most_common(1)[0][1] > 5 * countries.most_common()[-1][1]
    positions = {(e["session_id"], e["event"]): i for i, e in enumerate(first)}
    assert any(positions[(s, "end")] < positions[(s, "start")] for s in starts & ends)  # ends before starts
    assert all(
        end - timedelta(days=7) <= datetime.fromisoformat(e["ts"]).replace(tzinfo=UTC) <= end for e in first
    )
