"""Powertools Logger, Tracer and Metrics, shared by every function (one instance each per environment).

The service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set per function by the CDK app); the defaults serve local runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from player_sessions.read_counts import ReadTally, metered

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "player-sessions")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PlayerSessions")

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def report_reads(tally: ReadTally) -> None:
    """The request's Cassandra reads, as EMF metrics (the bounds the data model promises, watched deployed)."""
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=tally.rows)
    metrics.add_metric(name="PartitionsRead", unit=MetricUnit.Count, value=tally.partitions)


def reads_reported(app: Any, next_middleware: Callable[[Any], Response[Any]]) -> Response[Any]:
    """Route middleware (``app.use``): the route's Cassandra reads are counted and reported (report_reads)."""
    with metered() as reads:
        response = next_middleware(app)
    report_reads(reads)
    return response


__all__ = ["MetricUnit", "logger", "metrics", "reads_reported", "report_reads", "tracer"]
