"""Tools are no Lambda invocation: in them, the service's EMF metrics are neither flushed nor printed."""

from __future__ import annotations

import os
from typing import Any


def disable_service_metrics() -> None:
    """Sets ``POWERTOOLS_METRICS_DISABLED`` and makes the service's ``metrics`` record nothing in this process
    (and in the processes it forks). For a tool's entry point or its worker processes only, never on import nor
    in a function tests call: it changes the process for good. Powertools (3.37) honours the variable when it is asked to flush, but
    still prints the flush it makes by itself at a metric's 100th value (``add_metric`` of its CloudWatch EMF
    provider): a builder run or a loader chunk sends more statements than that, each with its latency."""
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    from player_sessions.observability import metrics

    metrics.provider.add_metric = _record_nothing  # type: ignore[method-assign]


def _record_nothing(*_: Any, **__: Any) -> None:
    return None
