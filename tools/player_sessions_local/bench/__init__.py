"""The benchmark: generate and load a data set, then measure every route and each write path against the
physical limit, and a live game's traffic, in one run.

    python -m player_sessions_local.bench [--events 1000000] [--quick] [--out bench-results/DATE]

In order, on the local Cassandra and Redis (`make up`), in keyspaces and a Redis database of its own:

1. generates ``--events`` realistic events (player_sessions_local.generate);
2. the physical limit: a bare loop of concurrent prepared inserts (same driver, same connection settings,
   the loader's number of processes) writing exactly the rows the ingest path writes for those events: session
   halves, session_starts rows, arrivals, completed_sessions_by_player rows; no validation, no read-back;
3. the loader (load.py's ``load_file``, ``--processes`` worker processes) on the same file;
4. HTTP ingest: ``--http-clients`` clients posting the file's first ``--http-events`` events, 10 a batch,
   through the local gateway, into a third keyspace;
5. the builder folds the load's arrivals (timed: the scheduled function's work after a bulk load), then runs
   in the background; the country metric's first answer over 8760 hours is checked against the file;
6. latency per route: ``--clients`` clients for ``--seconds`` per route, cache on and off, then one client;
7. a page of up to 1,000 starts against the seed project's unpaged list of the same starts;
8. the live scenario (bench/live.py): 100,000 starts in the open hour, then ingest at a fixed rate while a
   reader polls; rows read per request, cache hit ratio, exact counts;
9. the sustained burst (bench/burst.py): starts at 100/s, 278/s (a million an hour) and as fast as three
   clients post, ``--burst-seconds`` each, while one reader polls; reader p90 against quiet, the builders' lag,
   rows per request, exact counts;
10. POST /events latency (its sessions are not in the live scenario's truth);
11. the open-model capacity (bench/capacity.py): fixed arrival rates of an ingest/player/metric/page mix,
    ``--capacity-seconds`` each: up to the first rate whose p90 passes 500 ms or that is refused or fails, then
    halfway back (or down by halves when even the first rate fails; measure.open_model.search_capacity).

Rows are counted afterwards against the file. It prints p50/p90/p99 per route and the ratios, and writes
``summary.md``, ``latency.png`` and ``results.json`` to ``--out``. Exit status 1 when a request failed, a row
is missing or a count is not exact. ``--quick`` is a smoke run of a few thousand events (about three minutes).
"""

import os

# The loader's worker processes record Lambda metrics; a benchmark is no Lambda invocation (its entry point,
# __main__, also keeps the builder threads' metrics off the console: no_metrics).
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
