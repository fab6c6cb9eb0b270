"""The dashboard (latency percentiles per route and per function, errors, throttles, Keyspaces, cache) and the
alarms (p90 over 500 ms, errors rising), which notify an encrypted SNS topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra_cdk.constants import (
    ALARM_DATAPOINTS_TO_ALARM,
    ALARM_EVALUATION_PERIODS,
    ALARM_PERIOD_MINUTES,
    API_NAME,
    API_STAGE,
    CACHE_NAME,
    DASHBOARD_NAME,
    ERROR_ALARM_THRESHOLD,
    KEYSPACE,
    LATENCY_ALARM_STATISTIC,
    LATENCY_ALARM_THRESHOLD_MS,
    LATENCY_PERCENTILES,
    METRICS_NAMESPACE,
    ROLLUP_LAG_ALARM_SECONDS,
    SERVICE_NAME,
)
from infra_cdk.keys import service_key
from player_sessions.routes import FUNCTIONS, ROLLUP_BUILDER, ROUTES, Route

PERIOD = Duration.minutes(ALARM_PERIOD_MINUTES)
WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6
LATENCY_BOUND = cloudwatch.HorizontalAnnotation(
    value=LATENCY_ALARM_THRESHOLD_MS, label=f"{LATENCY_ALARM_THRESHOLD_MS} ms (alarm on p90)"
)


def route_label(route: Route) -> str:
    return f"{route.method} {route.path}"


def route_metric(route: Route, metric_name: str, statistic: str) -> cloudwatch.Metric:
    """API Gateway's per-method metric (the stage has detailed metrics on) for one route of the table."""
    return cloudwatch.Metric(
        namespace="AWS/ApiGateway",
        metric_name=metric_name,
        dimensions_map={
            "ApiName": API_NAME,
            "Stage": API_STAGE,
            "Method": route.method,
            "Resource": route.path,
        },
        statistic=statistic,
        period=PERIOD,
        label=f"{route_label(route)} {statistic}",
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


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.Function],
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        # Customer-managed: CloudWatch alarms can publish to an encrypted topic only if its key lets them.
        self.alarm_key = service_key(self, "AlarmTopicKey", description="Encrypts the alarm topic")
        self.alarm_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{SERVICE_NAME} alarms",
            master_key=self.alarm_key,
            enforce_ssl=True,
        )
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._functions = functions
        self.alarms: list[cloudwatch.Alarm] = []
        self._add_alarms()
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=DASHBOARD_NAME, default_interval=Duration.hours(3)
        )
        self._add_widgets()

    # --- Alarms ------------------------------------------------------------------------------------------

    def _add_alarms(self) -> None:
        for route in ROUTES:
            self._alarm(
                f"LatencyP90 {route_label(route)}",
                route_metric(route, "Latency", LATENCY_ALARM_STATISTIC),
                LATENCY_ALARM_THRESHOLD_MS,
                f"p90 latency of {route_label(route)} above {LATENCY_ALARM_THRESHOLD_MS} ms",
            )
        for function in FUNCTIONS:
            handler = self._functions[function.name]
            self._alarm(
                f"DurationP90 {function.name}",
                handler.metric_duration(statistic=LATENCY_ALARM_STATISTIC, period=PERIOD),
                LATENCY_ALARM_THRESHOLD_MS,
                f"p90 duration of the {function.name} function above {LATENCY_ALARM_THRESHOLD_MS} ms",
            )
            self._alarm(
                f"Errors {function.name}",
                handler.metric_errors(statistic="Sum", period=PERIOD),
                ERROR_ALARM_THRESHOLD,
                f"the {function.name} function failed {ERROR_ALARM_THRESHOLD} or more times a minute",
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        builder = self._functions[ROLLUP_BUILDER.name]
        self._alarm(
            "Errors rollup_builder",
            builder.metric_errors(statistic="Sum", period=PERIOD),
            1,
            "a rollup builder run failed: counts stay exact, but read a longer tail until one succeeds",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "RollupLag",
            self._service_metric("RollupLagSeconds", "Maximum"),
            ROLLUP_LAG_ALARM_SECONDS,
            f"the rollup builder is more than {ROLLUP_LAG_ALARM_SECONDS} s behind the arrivals, or not running",
            # The builder reports every minute: a minute without its report means it did not run.
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        # Handlers answer 503 themselves when Keyspaces is down: 5xx at the API, not function errors.
        self._alarm(
            "ServerErrors api",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map={"ApiName": API_NAME, "Stage": API_STAGE},
                statistic="Sum",
                period=PERIOD,
            ),
            ERROR_ALARM_THRESHOLD,
            f"the API answered {ERROR_ALARM_THRESHOLD} or more 5xx responses a minute",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        *,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id.replace("/", "_").replace("{", "").replace("}", ""),
            metric=metric,
            alarm_description=f"{SERVICE_NAME}: {description}",
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            datapoints_to_alarm=ALARM_DATAPOINTS_TO_ALARM,
            # No traffic is not an outage of this service's making (but no builder run is).
            treat_missing_data=missing,
        )
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)

    # --- Dashboard ---------------------------------------------------------------------------------------

    def _add_widgets(self) -> None:
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
                [self._service_metric(name, "Sum") for name in ("CacheHits", "CacheMisses")]
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
                [self._service_metric("DatabaseLatency", percentile) for percentile in LATENCY_PERCENTILES],
                unit="ms",
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Events",
                [
                    self._service_metric(name, "Sum")
                    for name in ("EventsStored", "EventsDiscarded", "EventsRejected", "SessionsCompleted")
                ],
            ),
            self._graph(
                "Errors answered by the handlers",
                [self._service_metric(name, "Sum") for name in ("ClientErrors", "ServerErrors")],
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Cassandra rows and partitions read per request",
                [
                    self._service_metric(name, statistic)
                    for name in ("RowsRead", "PartitionsRead")
                    for statistic in ("p50", "p99")
                ],
            ),
            self._graph(
                "Rollup builder: starts folded, and how far behind",
                [
                    self._service_metric("StartsFolded", "Sum"),
                    self._service_metric("RollupLagSeconds", "Maximum"),
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

    def _service_metric(self, name: str, statistic: str) -> cloudwatch.Metric:
        """The functions' own EMF metrics (Powertools adds the ``service`` dimension)."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE_NAME},
            statistic=statistic,
            period=PERIOD,
            label=f"{name} {statistic}",
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
