"""The cost model's arithmetic, with cases computed by hand: a batch's write units from its rows, a month's
storage from the retention, dollars from units, and the prices file's rule that every price names its source
and the day it was read."""

from __future__ import annotations

import copy
import json
import os
import uuid
from datetime import UTC, datetime

import pytest

from player_sessions_local.cost.measured import Invocation, read_invocations
from player_sessions_local.cost.model import LAMBDA_DURATION_FACTOR, builder_units, invocation_components
from player_sessions_local.cost.prices import (
    PRICES_FILE,
    REQUIRED_PRICES,
    PriceFileError,
    load_prices,
    parse_prices,
)
from player_sessions_local.cost.storage import steady_state_storage
from player_sessions_local.work.units import (
    Cell,
    Role,
    integer_bytes,
    page_bytes,
    python_value_bytes,
    read_units,
    row_bytes,
    write_units,
)


def test_a_row_is_sized_by_the_roles_of_its_columns():
    # Given a text partition key "abc", a timestamp clustering column and an int 12345
    cells = [Cell(Role.PARTITION, 3), Cell(Role.CLUSTERING, 8), Cell(Role.REGULAR, integer_bytes(12345))]

    # When / Then: (2*3 + 3 + 1) + (2*8 + 2 + 1) + (4 + 1) = 10 + 19 + 5; 12345: 3 pairs of digits + 1
    assert integer_bytes(12345) == 4
    assert integer_bytes(1_200_000) == 2  # trailing zeros trimmed: "12"
    assert row_bytes(cells, columns_in_table=3) == 34


def test_a_page_read_is_the_sum_of_its_rows_sized_one_by_one():
    # Given a page as the driver decodes it: a text partition key, a timestamp and a uuid clustering, and
    # regular columns holding text of several lengths (one not ASCII), nulls, integers, booleans and bytes
    roles = [Role.PARTITION, Role.CLUSTERING, Role.CLUSTERING, Role.REGULAR, Role.REGULAR, Role.REGULAR]
    moment = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    rows = [
        ("US", moment, uuid.UUID(int=n), "player-" + "é" * (n % 3), [None, n * 1000, True][n % 3], b"x" * n)
        for n in range(40)
    ]

    # When the page is sized a column at a time
    size = page_bytes(roles, rows, columns_in_table=70)

    # Then it is what sizing each row cell by cell gives (70 columns: identifiers of 2 bytes)
    one_by_one = sum(
        row_bytes(
            [Cell(role, python_value_bytes(value)) for role, value in zip(roles, row, strict=True)],
            columns_in_table=70,
        )
        for row in rows
    )
    assert size == one_by_one
    assert size > 40 * (2 * 2 + 3 + 2 * 8 + 2 * 16)
    assert page_bytes(roles, [], columns_in_table=70) == 0


def test_a_ten_event_batch_is_one_write_unit_per_row_under_a_kilobyte_and_more_above():
    # Given the rows of a 10-event batch (five sessions, start and end together), as the meter sizes them:
    # sessions halves 81 and 45 bytes, completed rows 136, start rows 123, arrival rows 99, one minute row 19
    rows = [81, 45] * 5 + [136] * 5 + [123] * 5 + [99] * 5 + [19]

    # When / Then: 26 rows, each under 1 KB
    assert write_units(rows) == 26
    # and a row of 1,025 bytes takes two units, 2,048 two, 2,049 three
    assert write_units([1025, 2048, 2049]) == 7


def test_a_read_is_one_unit_per_4_kb_at_local_quorum_and_half_at_local_one():
    assert [read_units(b) for b in (0, 4096, 4097, 10_000)] == [1.0, 1.0, 2.0, 3.0]
    assert read_units(4097, local_quorum=False) == 1.0


def test_a_month_of_storage_is_a_year_of_rows_at_their_stored_size():
    # Given one batch that wrote five session starts of 123 billed bytes each, for 1,000 sessions a day
    batch = Invocation(
        "r1",
        "ingest_events",
        billed_ms=10,
        memory_mb=1024,
        work={"cassandra": {"session_starts": {"rows_written": 5, "bytes_written": 615}}},
    )

    # When
    (starts,) = steady_state_storage([([batch], 5)], sessions_per_day=1_000)

    # Then the table holds 365 days of rows: 365,000, each 123 + 100 (row) + 8 + 8 x 6 columns (TTL) = 279 bytes
    assert (starts.table, starts.rows, starts.days) == ("session_starts", 365_000, 365)
    assert starts.stored_row_bytes == 279
    assert starts.gb == pytest.approx(365_000 * 279 / 1024**3)


def test_a_session_row_is_stored_once_though_written_twice():
    # Given a batch that wrote both halves of two sessions (81 + 45 bytes each)
    batch = Invocation(
        "r1",
        "ingest_events",
        billed_ms=10,
        memory_mb=1024,
        work={
            "cassandra": {
                "sessions": {"rows_written": 4, "bytes_written": 2 * 126},
                "session_starts": {"rows_written": 2, "bytes_written": 246},
            }
        },
    )

    # When
    storage = {t.table: t for t in steady_state_storage([([batch], 2)], sessions_per_day=10)}

    # Then one row per session: 126 + 100 + 8 + 8 x 5 columns
    assert storage["sessions"].rows == 3_650
    assert storage["sessions"].stored_row_bytes == 274


def test_dollars_per_million_are_units_times_prices():
    # Given one measured batch: 26 WRUs, 100 ms billed at 1,024 MB, 12 Redis commands moving 1,200 bytes
    prices = load_prices()
    batch = Invocation(
        "r1",
        "ingest_events",
        billed_ms=100,
        memory_mb=1024,
        log_bytes=1000,
        route="POST /events",
        work={
            "write_units": 26,
            "read_units": 0,
            "cache": {"commands": 12, "bytes_sent": 1000, "bytes_received": 200},
        },
    )

    # When
    by_name = {c.name: c for c in invocation_components([batch], prices, scale=1_000_000)}

    # Then
    assert by_name["Keyspaces writes"].quantity == 26_000_000
    assert by_name["Keyspaces writes"].usd == pytest.approx(26 * 0.625)
    assert by_name["API Gateway"].usd == pytest.approx(3.50)
    assert by_name["Lambda duration"].quantity == pytest.approx(0.1 * LAMBDA_DURATION_FACTOR * 1_000_000)
    assert by_name["ElastiCache"].quantity == 12_000_000  # 12 commands outweigh 1.2 KB
    assert by_name["ElastiCache"].usd is None  # the Valkey ECPU price is not in docs/aws-prices.json


def test_the_prices_file_has_every_price_with_its_source_and_date():
    prices = load_prices()
    assert set(REQUIRED_PRICES) <= set(prices.prices)
    assert all(p.source.startswith("https://") and p.read_on for p in prices.prices.values())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("source", None, "'source' must be the https address"),
        ("source", "aws pricing page", "'source' must be the https address"),
        ("read_on", None, "'read_on' must be the date"),
        ("read_on", "last week", "'read_on' must be the date"),
        ("quote", None, "a known price needs the 'quote'"),
    ],
)
def test_a_price_without_its_source_or_date_is_refused(field, value, message):
    # Given the real prices file with one known price stripped of a field
    document = copy.deepcopy(json.loads(PRICES_FILE.read_text()))
    entry = document["prices"]["keyspaces_write_request_units"]
    if value is None:
        del entry[field]
    else:
        entry[field] = value

    # When / Then
    with pytest.raises(PriceFileError, match=f"keyspaces_write_request_units: {message}"):
        parse_prices(document)


def test_the_gateway_log_is_read_into_invocations_with_their_logged_bytes(tmp_path):
    # Given a gateway log: one environment's EMF line and work line, then its REPORT
    work = {
        "message": "request work",
        "function_request_id": "abc",
        "route": "POST /events",
        "write_units": 26,
    }
    emf = {
        "_aws": {
            "CloudWatchMetrics": [
                {
                    "Namespace": "PlayerSessions",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "EventsStored", "Unit": "Count"}],
                }
            ]
        }
    }
    lines = [
        f"2026-12-01 11:21:16,000 INFO ingest_events#4 {json.dumps(emf)}",
        "2026-12-01 11:21:16,001 INFO ingest_events#4 " + json.dumps(work, separators=(",", ":")),
        (
            "2026-12-01 11:21:16,073 INFO ingest_events#4 REPORT RequestId: abc\tDuration: 26.84 ms\t"
            "Billed Duration: 27 ms\tMemory Size: 1024 MB\tMax Memory Used: 1024 MB\t"
        ),
    ]
    log = tmp_path / "gateway.log"
    log.write_text("\n".join(lines) + "\n")

    # When
    (invocation,) = read_invocations([log])

    # Then the work line is joined by request id and left out of the logged bytes (only local runs write it)
    assert (invocation.route, invocation.billed_ms, invocation.memory_mb, invocation.write_units) == (
        "POST /events",
        27.0,
        1024,
        26.0,
    )
    report = lines[2].split(" ", 4)[4]
    assert invocation.log_bytes == len(json.dumps(emf)) + 1 + len(report) + 1 + 71 + 52  # START and END lines
    assert invocation.metrics == {"PlayerSessions/EventsStored/service"}


def test_the_builder_is_billed_its_idle_minutes_and_its_work_per_start():
    # Given two idle minutes (10 and 12 WRU, 40 and 44 RRU) and a minute that folded 100 starts
    def minute(wrus: float, rrus: float, marks: int) -> Invocation:
        work = {
            "write_units": wrus,
            "read_units": rrus,
            "cassandra": {"start_marks": {"rows_written": marks}} if marks else {},
        }
        return Invocation(f"m{wrus}", "rollup_builder", route="scheduled rollup builder", work=work)

    # When
    idle, per_start = builder_units([minute(10, 40, 0), minute(12, 44, 0), minute(111, 242, 100)])

    # Then idle is their average, and each start costs what the busy minute did beyond idle, over its starts
    assert idle == (11.0, 42.0)
    assert per_start == (1.0, 2.0)


def test_with_no_benchmark_run_the_cost_command_prices_the_checked_in_profile_and_says_so(
    monkeypatch, capsys
):
    # Given a fresh clone: no bench-results/, only the checked-in profile of the latest full benchmark
    from player_sessions_local.cost import __main__ as cost_command
    from player_sessions_local.cost.runs import CHECKED_IN_PROFILE, load_profile

    monkeypatch.setattr(cost_command, "latest_run", lambda: None)
    run, invocations = load_profile()
    # When the cost command runs
    assert cost_command.main([]) == 0
    # Then it names the profile and its run, and prices every route the profile measured
    out = capsys.readouterr().out
    assert f"checked-in work profile ({CHECKED_IN_PROFILE.name}) of run {run['id']} ({run['date']}" in out
    assert f"{len(invocations):,} invocations" in out
    for route in ("POST /events", "GET /players/{player_id}/sessions", "GET /countries/starts?hours=24"):
        assert f"| `{route}` |" in out
    assert "**total (known prices)**" in out


def test_the_latest_bench_run_is_the_newest_make_bench_folder_not_a_later_concurrency_run(tmp_path):
    # Given a `make bench` run (its logs and its work profile), an older one, and a later concurrency bench's
    # folder (gateway logs of another mix, no profile), whose name also sorts after the dated ones
    from player_sessions_local.cost.runs import PROFILE_NAME, latest_run

    older, bench, concurrency = (
        tmp_path / "2026-12-05T21-16-06Z",
        tmp_path / "2026-12-06T04-10-00Z",
        tmp_path / "concurrency-20261206T060000Z",
    )
    for index, folder in enumerate((older, bench, concurrency)):
        folder.mkdir()
        (folder / "gateway-pool.log").write_text("")
        if folder is not concurrency:
            (folder / PROFILE_NAME).write_text("{}")
            os.utime(folder / PROFILE_NAME, (1_000 + index, 1_000 + index))

    # When the cost command looks for the latest run, then it is the newest `make bench` folder
    assert latest_run(tmp_path) == bench
    # And with no `make bench` run at all there is none (the checked-in profile is priced instead)
    for folder in (older, bench):
        (folder / PROFILE_NAME).unlink()
    assert latest_run(tmp_path) is None
