"""A tool's console carries what the tool says, not the service's EMF metrics (a tool is no Lambda)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

ADD_MANY_LATENCIES = textwrap.dedent(
    """
    import os
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    {disable}
    from aws_lambda_powertools.metrics import MetricUnit
    from player_sessions.observability import metrics
    for value in range(250):  # more than the 100 values at which Powertools flushes by itself
        metrics.add_metric(name="DatabaseLatency", unit=MetricUnit.Milliseconds, value=value)
    print("done")
    """
)


def printed(disable: str) -> str:
    script = ADD_MANY_LATENCIES.format(disable=disable)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_with_service_metrics_disabled_a_metrics_100th_value_prints_nothing():
    # Given the variable alone, Powertools still prints the flush it makes at a metric's 100th value
    assert '"_aws"' in printed("")
    # When the tool disables the service's metrics / Then nothing but the tool's own line is printed
    disabled = (
        "from player_sessions_local.no_metrics import disable_service_metrics; disable_service_metrics()"
    )
    assert printed(disabled).splitlines() == ["done"]
