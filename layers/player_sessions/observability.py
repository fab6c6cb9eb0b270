"""Powertools Logger, Tracer and Metrics, shared by every function (one instance each per environment).

The service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set per function by the CDK app); the defaults serve local runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from player_sessions.read_meter import ReadTally, metered
from player_sessions.settings import get_settings
from player_sessions.work_meter import work_record

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "player-sessions")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PlayerSessions")

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def report_reads(tally: ReadTally, route: str, hours: int) -> None:
    """The request's Cassandra reads and cache lookups, as EMF metrics and one log line (which the local
    gateway's log and the benchmark read)."""
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=tally.rows)
    metrics.add_metric(name="PartitionsRead", unit=MetricUnit.Count, value=tally.partitions)
    logger.info(
        "cassandra reads",
        extra={
            "route": f"{route}?hours={hours}",
            "rows_read": tally.rows,
            "partitions_read": tally.partitions,
            "read_requests": tally.requests,
            "cache_hits": tally.cache_hits,
            "cache_misses": tally.cache_misses,
        },
    )


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SCHEDULED_ROUTE = "scheduled rollup builder"


def route_of(event: dict[str, Any]) -> str:
    """``GET /countries/{country}/starts?hours=24`` for an API Gateway proxy event; the window is part of what a
    count costs. Anything else is the builder's schedule."""
    method, resource = event.get("httpMethod"), event.get("resource")
    if not method or not resource:
        return SCHEDULED_ROUTE
    hours = (event.get("queryStringParameters") or {}).get("hours")
    return f"{method} {resource}" + (f"?hours={hours}" if hours else "")


def measure_work(handler: Handler) -> Handler:
    """The invocation runs metered; with ``report_work`` set, its measured work is logged as one line.

    Goes under ``logger.inject_lambda_context``, so the line carries the request id the REPORT line has.
    """

    @functools.wraps(handler)
    def measured(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with metered() as tally:
            try:
                return handler(event, context)
            finally:
                if get_settings().report_work:
                    logger.info("request work", extra={"route": route_of(event), **work_record(tally)})

    return measured


__all__ = [
    "SCHEDULED_ROUTE",
    "MetricUnit",
    "logger",
    "measure_work",
    "metrics",
    "report_reads",
    "route_of",
    "tracer",
]
