"""`make bench` in its quick size: one command that loads data, measures every route through the local gateway,
compares the write paths with the bare loop, counts the rows, and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from player_sessions_local.bench.options import LIVE_OPS_PATHS, METRIC_HOURS
from player_sessions_local.cpu_profile import COMPONENTS

pytestmark = pytest.mark.e2e

INGEST = [
    "POST /events (10 events)",
    "POST /events (player token, authorizer cached)",
    "POST /events (new player token each request)",
]
ROUTES = [
    *INGEST,
    "GET /players/{id}/sessions",
    "GET /countries/{c}/starts (limit 100)",
    *(f"GET /countries/starts?hours={hours}" for hours in METRIC_HOURS),
    *(f"GET {path}" for path in LIVE_OPS_PATHS),
]


# Every phase in its quick size, each route with and without the cache, four builders: about five minutes on a
# slow host, over the suite's default of 300 s.
@pytest.mark.timeout(900)
def test_quick_benchmark_reports_every_route_with_no_error_and_no_lost_row(tmp_path):
    # Given the local Cassandra and Redis, and keyspaces and a Redis database that no other test or run uses
    out = tmp_path / "bench"
    command = [
        sys.executable,
        "-m",
        "player_sessions_local.bench",
        "--quick",
        "--out",
        str(out),
        "--keyspace",
        "player_sessions_bench_smoke",
        "--redis-db",
        "13",
    ]
    # When the quick benchmark runs
    finished = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=840, env=os.environ.copy()
    )
    # Then it succeeds: no request failed and every row the events should leave was found
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert (results["errors"], results["lost_rows"]) == (0, 0)
    assert all(
        count["missing"] == 0 and count["extra"] == 0
        for counts in results["rows"].values()
        for count in counts
    )
    # And every route was measured, with and without the cache for reads, and reported with its percentiles
    measured = {(row["route"], row["cache"]) for row in results["latency"] if row["requests"] > 0}
    assert measured == {(route, "on") for route in INGEST} | {
        (route, cache) for route in ROUTES[len(INGEST) :] for cache in ("on", "off")
    }
    # And again one client at a time
    single = {(row["route"], row["cache"]) for row in results["latency_one_client"] if row["requests"] > 0}
    assert single == measured
    # And with the CPU each of those requests cost, by component: every route ran a handler in an environment
    for row in results["latency_one_client"]:
        assert set(row["cpu_ms_per_request"]) == set(COMPONENTS), row
        assert row["cpu_ms_per_request"]["runtimes"] > 0, row
    summary = (out / "summary.md").read_text()
    assert all(f"`{route}`" in summary for route in ROUTES)
    assert "CPUs" in summary and "memory" in summary
    assert [name.split(" (")[0] for name in results["throughput"]] == ["bare loop", "loader", "HTTP ingest"]
    assert set(results["ratios"]) == {"loader", "http"}
    # And it priced the work it measured: dollars per million requests of each route, and a month of a game
    cost = summary.split("## Cost per request and per month", 1)[1]
    assert all(
        f"| `{route}` |" in cost
        for route in (
            "POST /events",
            "GET /players/{player_id}/sessions",
            "GET /countries/starts?hours=24",
            "GET /countries/online",
        )
    )
    assert "**total (known prices)**" in cost and "1,000,000 daily players x 3 sessions" in cost
    # And the plot is a PNG, and the console shows the table and the ratios
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "p90" in finished.stdout and "ratio" in finished.stdout
    # And the live scenario's sessions (most of them ended) left every count exact: starts, online, lengths
    live_checks = {check["label"]: check for check in results["live"]["checks"]}
    for label in ("after 2,000 sessions", "after live ingest"):
        for figure in ("total over 1 h", "sessions online", "completed sessions over 24 h"):
            check = live_checks[f"{label}: {figure}"]
            assert check["expected"] == check["counted"], check
    assert live_checks["after 2,000 sessions: completed sessions over 24 h"]["expected"] >= 1_800
    # And the sustained burst ran at each rate, its readers timed, the builders' lag sampled, the counts exact
    bursts = results["bursts"]
    assert [burst["target_rate"] for burst in bursts] == [100.0, 278.0, None]
    for burst in bursts:
        assert burst["achieved_rate"] > 0 and burst["ingest_errors"] == 0
        assert all(reader["requests"] > 0 and reader["errors"] == 0 for reader in burst["readers"])
        assert burst["tail_span_seconds"]["max"] >= burst["lag_seconds"]["max"] > 0
        # the largest lag samples with their moments, the largest first, within the burst
        worst = burst["lag_worst"]
        assert 1 <= len(worst) <= 3
        assert worst[0]["lag_seconds"] == burst["lag_seconds"]["max"]
        assert [w["lag_seconds"] for w in worst] == sorted((w["lag_seconds"] for w in worst), reverse=True)
        assert all(0 <= w["seconds_into_burst"] <= burst["seconds"] + 5 for w in worst), worst
        assert burst["checks"] and all(check["expected"] == check["counted"] for check in burst["checks"])
        # with where the CPU went meanwhile: ingest's environments, Cassandra, the builders' process folding
        cpu = burst["cpu_ms_per_start"]
        assert set(cpu) == {*COMPONENTS, "builders"}, cpu
        assert min(cpu["runtimes"], cpu["cassandra"], cpu["builders"]) > 0, cpu
        assert 0 < burst["cores_busy"] < (os.cpu_count() or 1) + 0.5, burst
    assert "## Sustained burst" in summary and "cores busy" in summary.split("## Sustained burst", 1)[1]
    # And the open-model search sent each rate it tried, with no 5xx below its capacity
    capacity = results["capacity"]
    assert capacity["rates"] and all(rate["sent"] > 0 for rate in capacity["rates"])
    assert all(
        rate["server_errors"] == 0 for rate in capacity["rates"] if rate["rate"] <= capacity["capacity"]
    )
    assert "## Open-model capacity" in summary
