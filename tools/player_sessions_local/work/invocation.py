"""One invocation's work, as one ``request work`` line beside the emulator's REPORT line (the cost model joins
them by request id)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from player_sessions.read_counts import ReadTally, metered
from player_sessions_local.work.meter import WorkTally, measuring, work_record

WORK_MESSAGE = "request work"
SCHEDULED_ROUTE = "scheduled rollup builder"
AUTHORIZER_ROUTE = "player token authorizer"
Handler = Callable[[dict[str, Any], Any], Any]


def route_of(event: dict[str, Any]) -> str:
    """``GET /countries/{country}/starts?hours=24`` for an API Gateway proxy event; the window is part of what a
    count costs. An authorizer event is the authorizer's; anything else is the builder's schedule."""
    method, resource = event.get("httpMethod"), event.get("resource")
    if "methodArn" in event:
        return AUTHORIZER_ROUTE
    if not method or not resource:
        return SCHEDULED_ROUTE
    hours = (event.get("queryStringParameters") or {}).get("hours")
    return f"{method} {resource}" + (f"?hours={hours}" if hours else "")


def work_line(request_id: str, route: str, work: WorkTally, reads: ReadTally, **extra: Any) -> str:
    """The line: compact JSON, its message first (what the cost model looks for)."""
    record = {
        "message": WORK_MESSAGE,
        "function_request_id": request_id,
        "route": route,
        **extra,
        **work_record(work),
        "rows_read": reads.rows,
        "partitions_read": reads.partitions,
        "read_requests": reads.requests,
        "cache_hits": reads.cache_hits,
        "cache_misses": reads.cache_misses,
    }
    return json.dumps(record, separators=(",", ":"))


def measured(handler: Handler) -> Handler:
    """The handler, with each invocation's work printed after it (whatever it returned or raised)."""

    @functools.wraps(handler)
    def run(event: dict[str, Any], context: Any) -> Any:
        with metered() as reads, measuring() as work:
            try:
                return handler(event, context)
            finally:
                print(work_line(context.aws_request_id, route_of(event), work, reads), flush=True)

    return run
