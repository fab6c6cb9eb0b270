"""The dashboard: latency percentiles per route and per function, errors, throttles, Keyspaces and the cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_

from infra_cdk.constants import (
    CACHE_NAME,
    KEYSPACE,
    LATENCY_ALARM_THRESHOLD_MS,
    LATENCY_PERCENTILES,
    SERVICE_NAME,
)
from infra_cdk.metrics import PERIOD, route_label, route_metric, service_metric
from player_sessions.routes import FUNCTIONS, ROUTES

WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6
LATENCY_BOUND = cloudwatch.HorizontalAnnotation(
    value=LATENCY_ALARM_THRESHOLD_MS, label=f"{LATENCY_ALARM_THRESHOLD_MS} ms (alarm on p90)"
)


def _search(schema: str, metric_name: str, statistic: str, label: str) -> cloudwatch.MathExpression:
    """Every series of a metric whose dimension values (tables, operations) are only known at run time."""
    terms = f'MetricName="{metric_name}" Keyspace="{KEYSPACE}"'
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{schema}}} {terms}', '{statistic}', {int(PERIOD.to_seconds())})",
        label=label,
        period=PERIOD,
    )


KEYSPACES_TABLE_OPERATIONS = "AWS/Cassandra,Keyspace,Operation,TableName"
KEYSPACES_TABLES = "AWS/Cassandra,Keyspace,TableName"


class DashboardWidgets:
    """Fills the dashboard; ``functions``: every function, by name."""

    def __init__(self, dashboard: cloudwatch.Dashboard, functions: Mapping[str, lambda_.Function]) -> None:
        self.dashboard = dashboard
        self._functions = functions

    def add(self, alarms: Sequence[cloudwatch.IAlarm] = ()) -> None:
        """The widgets; ``alarms`` first, as one status widget (every alarm of infra_cdk.monitoring)."""
        if alarms:
            self.dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(
                    title="Alarms", alarms=list(alarms), width=3 * WIDGET_WIDTH, height=WIDGET_HEIGHT
                )
            )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {SERVICE_NAME}\nLatency percentiles per route (API Gateway) and per function "
                f"(Lambda); alarms fire when p90 exceeds {LATENCY_ALARM_THRESHOLD_MS} ms or errors rise.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            *(
                self._graph(
                    f"Latency {route_label(route)}",
                    [route_metric(route, "Latency", percentile) for percentile in LATENCY_PERCENTILES],
                    unit="ms",
                    bound=True,
                )
                for route in ROUTES
            )
        )
        self.dashboard.add_widgets(
            *(
                self._graph(
                    f"Duration {function.name}",
                    [
                        self._functions[function.name].metric_duration(
                            statistic=percentile, period=PERIOD, label=f"{function.name} {percentile}"
                        )
                        for percentile in LATENCY_PERCENTILES
                    ],
                    unit="ms",
                    bound=True,
                )
                for function in FUNCTIONS
            )
        )
        self.dashboard.add_widgets(
            self._graph(
                "API errors per route (4xx, 5xx)",
                [route_metric(route, "5XXError", "Sum") for route in ROUTES]
                + [route_metric(route, "4XXError", "Sum") for route in ROUTES],
            ),
            self._graph(
                "Function errors",
                [
                    self._functions[f.name].metric_errors(statistic="Sum", period=PERIOD, label=f.name)
                    for f in FUNCTIONS
                ],
            ),
            self._graph(
                "Function throttles and concurrency",
                [
                    self._functions[f.name].metric_throttles(
                        statistic="Sum", period=PERIOD, label=f"{f.name} throttles"
                    )
                    for f in FUNCTIONS
                ]
                + [
                    self._functions[f.name].metric(
                        "ConcurrentExecutions",
                        statistic="Maximum",
                        period=PERIOD,
                        label=f"{f.name} concurrency",
                    )
                    for f in FUNCTIONS
                ],
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Keyspaces request latency (average, by table and operation)",
                [_search(KEYSPACES_TABLE_OPERATIONS, "SuccessfulRequestLatency", "Average", "latency")],
                unit="ms",
            ),
            self._graph(
                "Keyspaces consumed capacity and throttling",
                [
                    _search(KEYSPACES_TABLES, name, "Sum", name)
                    for name in (
                        "ConsumedReadCapacityUnits",
                        "ConsumedWriteCapacityUnits",
                        "StoragePartitionThroughputCapacityExceeded",
                    )
                ],
            ),
            self._graph(
                "Keyspaces errors",
                [
                    _search(KEYSPACES_TABLE_OPERATIONS, "SystemErrors", "Sum", "system errors"),
                    cloudwatch.Metric(
                        namespace="AWS/Cassandra",
                        metric_name="UserErrors",
                        statistic="Sum",
                        period=PERIOD,
                        label="user errors (account)",
                    ),
                ],
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Cache hits and misses (service side, failures count as misses)",
                [service_metric(name, "Sum") for name in ("CacheHits", "CacheMisses")]
                + [self._cache_metric(name, "Sum") for name in ("CacheHits", "CacheMisses")],
            ),
            self._graph(
                "Cache latency and load",
                [
                    self._cache_metric("SuccessfulReadRequestLatency", "p90"),
                    self._cache_metric("SuccessfulWriteRequestLatency", "p90"),
                    self._cache_metric("ElastiCacheProcessingUnits", "Sum"),
                    self._cache_metric("ThrottledCmds", "Sum"),
                ],
            ),
            self._graph(
                "Database latency seen by the functions",
                [service_metric("DatabaseLatency", percentile) for percentile in LATENCY_PERCENTILES],
                unit="ms",
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Events",
                [
                    service_metric(name, "Sum")
                    for name in ("EventsStored", "EventsDiscarded", "EventsRejected", "SessionsCompleted")
                ],
            ),
            self._graph(
                "Errors answered by the handlers",
                [service_metric(name, "Sum") for name in ("ClientErrors", "ServerErrors")],
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Cassandra rows and partitions read per request",
                [
                    service_metric(name, statistic)
                    for name in ("RowsRead", "PartitionsRead")
                    for statistic in ("p50", "p99")
                ],
            ),
            self._graph(
                "Rollup builder: starts and session records folded, and how far behind",
                [
                    service_metric("StartsFolded", "Sum"),
                    service_metric("RecordsFolded", "Sum"),
                    service_metric("RollupLagSeconds", "Maximum"),
                ],
            ),
        )

    def _graph(
        self,
        title: str,
        metrics: Sequence[cloudwatch.IMetric],
        *,
        unit: str | None = None,
        bound: bool = False,
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=metrics,
            left_y_axis=cloudwatch.YAxisProps(label=unit, show_units=False, min=0) if unit else None,
            left_annotations=[LATENCY_BOUND] if bound else None,
            width=WIDGET_WIDTH,
            height=WIDGET_HEIGHT,
        )

    def _cache_metric(self, name: str, statistic: str) -> cloudwatch.Metric:
        """ElastiCache Serverless publishes its metrics per cache, under the ``clusterId`` dimension."""
        return cloudwatch.Metric(
            namespace="AWS/ElastiCache",
            metric_name=name,
            dimensions_map={"clusterId": CACHE_NAME},
            statistic=statistic,
            period=PERIOD,
            label=f"cache {name} {statistic}",
        )
