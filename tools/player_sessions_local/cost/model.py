"""Dollars from measured work: per million requests of each route, and a month of a described game.

Every figure is quantity x price. A quantity comes from the measured invocations (or, for a month, from them
scaled by the game's traffic); a price from docs/aws-prices.json. A price nobody could read from AWS stays
unknown: its component shows the quantity, and the totals say they leave it out.

Where a local figure stands in for AWS's:
- Lambda duration: the local emulator runs a function on this machine's CPU, unthrottled. At 1,024 MB Lambda
  gives a function 1024/1769 of a vCPU (a full vCPU at 1,769 MB, AWS's documented ratio), so CPU-bound time
  stretches by up to 1769/1024 = 1.73; time spent waiting on Keyspaces or Redis does not. We multiply the whole
  billed duration by ``LAMBDA_DURATION_FACTOR`` = 1.73: an upper bound for this code, whose requests mostly
  wait. Graviton's per-core speed against this CPU is not measured.
- Keyspaces units: computed from the rows this service writes and reads (player_sessions.keyspaces_units);
  reads are sized by the columns returned, and Keyspaces bills what it had to read.
- ECPUs: max(commands, KB moved) per request; commands that take more vCPU (none here beyond GET, SET,
  MGET, INCR, EXPIRE) cost more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from infra_cdk.constants import (
    LAMBDA_MEMORY_MB,
    LOG_RETENTION,
    ROLLUP_BUILDER_SCHEDULE_MINUTES,
    ROLLUP_PARTS,
)
from player_sessions.domain.country_starts.schedule import RETURN_MARGIN, SCHEDULE_PERIOD
from player_sessions.routes import PLAYER_EVENTS_PATH, STUDIO_EVENTS_PATH
from player_sessions_local.cost.measured import Invocation, dashboard_routes
from player_sessions_local.cost.prices import PriceList
from player_sessions_local.cost.storage import TableStorage, steady_state_storage
from player_sessions_local.work.invocation import SCHEDULED_ROUTE
from player_sessions_local.work.units import WRITE_UNIT_BYTES

LAMBDA_VCPU_MB = 1769
LAMBDA_DURATION_FACTOR = round(LAMBDA_VCPU_MB / LAMBDA_MEMORY_MB, 2)
MILLION = 1_000_000
GB = 1024**3
SECONDS_PER_MONTH = 30 * 86_400
MINUTES_PER_MONTH = 30 * 1_440
HOURS_PER_MONTH = 730
XRAY_RESERVOIR_PER_SECOND = 1
XRAY_SAMPLED_FRACTION = 0.05
"""X-Ray's default sampling, which the functions use (tracing active): the first request each second, then 5%."""
XRAY_FREE_TRACES = 100_000
ACCESS_LOG_LINE_BYTES = 420
"""One API Gateway access log line in infra_cdk/api.py's JSON format with typical values (request id, time, IP,
key id, method, path, status, protocol, lengths, latencies, error fields, trace id)."""
VALKEY_MINIMUM_GB = 0.1
"""ElastiCache Serverless for Valkey meters at least 100 MB of data (AWS's pricing page)."""
RETENTION_MONTHS = {"ONE_WEEK": 0.25, "TWO_WEEKS": 0.5, "ONE_MONTH": 1.0, "THREE_MONTHS": 3.0}
EVENTS_PER_BATCH = 10


@dataclass(frozen=True)
class Component:
    name: str
    quantity: float
    unit: str
    usd: float | None
    """None: the price is unknown."""


@dataclass
class RouteCost:
    route: str
    requests: int
    components: list[Component] = field(default_factory=list)

    @property
    def known_usd(self) -> float:
        return sum(c.usd for c in self.components if c.usd is not None)

    @property
    def unknown(self) -> list[str]:
        return [c.name for c in self.components if c.usd is None]


def builder_units(minutes: Sequence[Invocation]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The builder's (WRU, RRU) a minute with nothing to fold, and per start folded beyond that.

    Idle: the average of the minutes that folded no start (its polls and watermark writes), or the quietest
    minute if none was idle; per start: what the other minutes did beyond idle, over the starts they folded
    (each start counted gets a mark)."""
    idle_minutes = [m for m in minutes if not m.rows_written("start_marks")]
    busy = [m for m in minutes if m.rows_written("start_marks")]
    if idle_minutes:
        idle = (
            sum(m.write_units for m in idle_minutes) / len(idle_minutes),
            sum(m.read_units for m in idle_minutes) / len(idle_minutes),
        )
    else:
        quietest = min(minutes, key=lambda m: m.write_units + m.read_units)
        idle = (quietest.write_units, quietest.read_units)
    starts = sum(m.rows_written("start_marks") for m in busy) or 1
    per_start = (
        max(0.0, sum(m.write_units - idle[0] for m in busy) / starts),
        max(0.0, sum(m.read_units - idle[1] for m in busy) / starts),
    )
    return idle, per_start


def builder_run_seconds() -> float:
    """How long each scheduled invocation of the builder runs when delivered on time, at most
    (domain.country_starts.schedule): its billed time."""
    return (SCHEDULE_PERIOD - RETURN_MARGIN).total_seconds()


def _priced(prices: PriceList, key: str, quantity: float, per: float, *, name: str, unit: str) -> Component:
    price = prices.usd(key)
    return Component(name, quantity, unit, None if price is None else quantity / per * price)


def invocation_components(
    invocations: Sequence[Invocation], prices: PriceList, *, scale: float, through_api: bool = True
) -> list[Component]:
    """The components of these invocations, each scaled by ``scale`` (1e6 / n: per million requests)."""
    n = len(invocations)
    gb_seconds = sum(i.billed_ms / 1000 * i.memory_mb / 1024 for i in invocations) * LAMBDA_DURATION_FACTOR
    wrus = sum(i.write_units for i in invocations)
    rrus = sum(i.read_units for i in invocations)
    ecpus = sum(max(i.cache_commands, i.cache_bytes / 1024) for i in invocations)
    log_bytes = sum(i.log_bytes for i in invocations) + (n * ACCESS_LOG_LINE_BYTES if through_api else 0)
    components = []
    if through_api:
        components.append(
            _priced(
                prices, "api_gateway_rest_requests", n * scale, MILLION, name="API Gateway", unit="requests"
            )
        )
    components += [
        _priced(prices, "lambda_requests", n * scale, MILLION, name="Lambda requests", unit="requests"),
        _priced(prices, "lambda_gb_second_arm64", gb_seconds * scale, 1, name="Lambda duration", unit="GB-s"),
        _priced(
            prices,
            "keyspaces_write_request_units",
            wrus * scale,
            MILLION,
            name="Keyspaces writes",
            unit="WRU",
        ),
        _priced(
            prices, "keyspaces_read_request_units", rrus * scale, MILLION, name="Keyspaces reads", unit="RRU"
        ),
        _priced(
            prices,
            "elasticache_serverless_valkey_ecpu",
            ecpus * scale,
            MILLION,
            name="ElastiCache",
            unit="ECPU",
        ),
        _priced(
            prices,
            "cloudwatch_logs_ingested_gb",
            log_bytes * scale / GB,
            1,
            name="CloudWatch Logs",
            unit="GB",
        ),
    ]
    if through_api:
        components.append(
            _priced(
                prices,
                "xray_traces_recorded",
                XRAY_SAMPLED_FRACTION * n * scale,
                MILLION,
                name="X-Ray (5% sampled)",
                unit="traces",
            )
        )
    return components


SAME_WORK = {f"POST {STUDIO_EVENTS_PATH}": f"POST {PLAYER_EVENTS_PATH}"}
"""Routes priced as another: the studio's ingest is a game client's ingest (one function, the same writes);
the benchmark posts as the studio, a game's batches come from its clients."""


def _by_route(invocations: Iterable[Invocation]) -> dict[str, list[Invocation]]:
    grouped: dict[str, list[Invocation]] = defaultdict(list)
    for invocation in invocations:
        if invocation.route:
            grouped[SAME_WORK.get(invocation.route, invocation.route)].append(invocation)
    return grouped


def per_route(invocations: Iterable[Invocation], prices: PriceList) -> list[RouteCost]:
    """Dollars per million requests of each route, from the invocations measured on it."""
    return [
        RouteCost(route, len(group), invocation_components(group, prices, scale=MILLION / len(group)))
        for route, group in sorted(_by_route(invocations).items())
        if route != SCHEDULED_ROUTE
    ]


# --- A month of a game --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Game:
    daily_players: int
    sessions_per_player: float
    dashboard_polls_per_minute: float
    player_lookups_per_minute: float
    dashboard_hours: int = 24

    @property
    def sessions_per_month(self) -> float:
        return self.daily_players * self.sessions_per_player * 30

    @property
    def batches_per_month(self) -> float:
        return 2 * self.sessions_per_month / EVENTS_PER_BATCH


@dataclass
class MonthlyEstimate:
    game: Game
    components: list[Component]
    storage: list[TableStorage]
    notes: list[str]

    @property
    def known_usd(self) -> float:
        return sum(c.usd for c in self.components if c.usd is not None)


def _merge(groups: Iterable[list[Component]]) -> list[Component]:
    merged: dict[str, Component] = {}
    for group in groups:
        for c in group:
            before = merged.get(c.name)
            if before is None:
                merged[c.name] = c
            else:
                usd = None if before.usd is None or c.usd is None else before.usd + c.usd
                merged[c.name] = Component(c.name, before.quantity + c.quantity, c.unit, usd)
    return list(merged.values())


def monthly(
    invocations: Sequence[Invocation],
    prices: PriceList,
    game: Game,
    *,
    alarms: int,
    dashboards: int,
    keys: int,
) -> MonthlyEstimate:
    routes = _by_route(invocations)
    dashboard = dashboard_routes(game.dashboard_hours)
    wanted = {
        "POST /events": game.batches_per_month,
        **dict.fromkeys(dashboard, game.dashboard_polls_per_minute * MINUTES_PER_MONTH),
        "GET /players/{player_id}/sessions": game.player_lookups_per_minute * MINUTES_PER_MONTH,
    }
    notes = []
    groups = []
    for route, monthly_requests in wanted.items():
        measured = routes.get(route)
        if not measured:
            notes.append(f"`{route}`: not measured in these logs; left out")
            continue
        groups.append(invocation_components(measured, prices, scale=monthly_requests / len(measured)))
    batches = routes.get("POST /events", [])
    starts_measured = sum(i.rows_written("session_starts") for i in batches)
    builder = routes.get(SCHEDULED_ROUTE, [])
    # Each start the builder counts gets its mark: the starts it folded, whoever stored them (the benchmark's
    # loader writes most of them straight to Cassandra).
    starts_folded = sum(i.rows_written("start_marks") for i in builder)
    if builder and starts_folded:
        # The builder runs all month on its schedule: its idle minutes' work every minute, and its work per
        # start folded for each of the month's starts.
        idle, per_start = builder_units(builder)
        # Each part's builder is invoked on the schedule; each logged minute is one part's.
        invocations_per_month = MINUTES_PER_MONTH / ROLLUP_BUILDER_SCHEDULE_MINUTES * ROLLUP_PARTS
        starts = game.sessions_per_month
        wrus = idle[0] * invocations_per_month + per_start[0] * starts
        rrus = idle[1] * invocations_per_month + per_start[1] * starts
        gb_seconds = builder_run_seconds() * LAMBDA_MEMORY_MB / 1024 * invocations_per_month
        groups.append(
            [
                _priced(
                    prices,
                    "lambda_requests",
                    invocations_per_month,
                    MILLION,
                    name="Lambda requests",
                    unit="requests",
                ),
                _priced(prices, "lambda_gb_second_arm64", gb_seconds, 1, name="Lambda duration", unit="GB-s"),
                _priced(
                    prices,
                    "keyspaces_write_request_units",
                    wrus,
                    MILLION,
                    name="Keyspaces writes",
                    unit="WRU",
                ),
                _priced(
                    prices, "keyspaces_read_request_units", rrus, MILLION, name="Keyspaces reads", unit="RRU"
                ),
            ]
        )
        notes.append(
            f"rollup builder: {ROLLUP_PARTS} parts, each invoked every {ROLLUP_BUILDER_SCHEDULE_MINUTES} min, billed its "
            f"{builder_run_seconds():g} s each time (at most: a run returns once no fold fits before its part's "
            "next); its Keyspaces work, measured over "
            f"{len(builder)} minutes and {starts_folded:,} starts folded: {idle[0]:,.0f} WRU + "
            f"{idle[1]:,.0f} RRU a minute idle, and {per_start[0]:.2f} WRU + {per_start[1]:.2f} RRU per "
            "start; its few log lines are left out"
        )
    else:
        notes.append("rollup builder: no invocation in these logs; left out")
    storage = steady_state_storage(
        [(batches, starts_measured), (builder, starts_folded)], game.daily_players * game.sessions_per_player
    )
    storage_gb = sum(t.gb for t in storage)
    # At steady state a day's rows expire every day: one TTL delete per KB of each.
    expired_rows_per_month = sum(
        t.rows / t.days * 30 * math.ceil(t.stored_row_bytes / WRITE_UNIT_BYTES) for t in storage
    )
    requests = sum(wanted.values())
    traces = min(requests, XRAY_RESERVOIR_PER_SECOND * SECONDS_PER_MONTH * len(wanted))
    traces += XRAY_SAMPLED_FRACTION * max(0.0, requests - traces)
    log_gb = sum(c.quantity for g in groups for c in g if c.name == "CloudWatch Logs")
    retention_months = RETENTION_MONTHS.get(LOG_RETENTION, 1.0)
    groups.append(
        [
            _priced(
                prices, "keyspaces_storage_gb_month", storage_gb, 1, name="Keyspaces storage", unit="GB-month"
            ),
            _priced(prices, "keyspaces_pitr_gb_month", storage_gb, 1, name="Keyspaces PITR", unit="GB-month"),
            _priced(
                prices,
                "keyspaces_ttl_deletes",
                expired_rows_per_month,
                MILLION,
                name="Keyspaces TTL deletes",
                unit="TTL deletes",
            ),
            _priced(
                prices,
                "elasticache_serverless_valkey_storage_gb_hour",
                VALKEY_MINIMUM_GB * HOURS_PER_MONTH,
                1,
                name="ElastiCache storage (minimum)",
                unit="GB-h",
            ),
            _priced(
                prices,
                "cloudwatch_logs_storage_gb_month",
                log_gb * retention_months,
                1,
                name="CloudWatch Logs storage",
                unit="GB-month",
            ),
            _priced(
                prices,
                "xray_traces_recorded",
                max(0.0, traces - XRAY_FREE_TRACES),
                MILLION,
                name="X-Ray",
                unit="traces",
            ),
            _priced(
                prices,
                "cloudwatch_custom_metrics",
                len(set().union(*(i.metrics for i in invocations))),
                1,
                name="CloudWatch custom metrics",
                unit="metrics",
            ),
            _priced(
                prices, "cloudwatch_alarm_standard_month", alarms, 1, name="CloudWatch alarms", unit="alarms"
            ),
            _priced(
                prices,
                "cloudwatch_dashboard_month",
                dashboards,
                1,
                name="CloudWatch dashboard",
                unit="dashboards",
            ),
            _priced(prices, "kms_key_month", keys, 1, name="KMS keys", unit="keys"),
        ]
    )
    # X-Ray is counted once for the month (reservoir and 5%), not per route.
    merged = [c for c in _merge(groups) if c.name != "X-Ray (5% sampled)"]
    return MonthlyEstimate(game, merged, storage, notes)
