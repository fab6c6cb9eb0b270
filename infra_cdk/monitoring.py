"""The alarms (p90 over 500 ms, errors rising; refused and throttled callers, Lambda throttles, Keyspaces
throttling and user errors, cache errors), which notify an encrypted SNS topic, and the dashboard
(infra_cdk.dashboard)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra_cdk.constants import (
    ALARM_DATAPOINTS_TO_ALARM,
    ALARM_EVALUATION_PERIODS,
    DASHBOARD_NAME,
    ERROR_ALARM_THRESHOLD,
    KEYSPACE,
    LATENCY_ALARM_STATISTIC,
    LATENCY_ALARM_THRESHOLD_MS,
    METRICS_NAMESPACE,
    ROLLUP_LAG_ALARM_SECONDS,
    SERVICE_NAME,
)
from infra_cdk.dashboard import DashboardWidgets
from infra_cdk.keys import service_key
from infra_cdk.metrics import PERIOD, api_metric, route_label, route_metric, service_metric
from player_sessions.routes import FUNCTIONS, ROLLUP_BUILDER, ROUTES
from player_sessions.schema import TABLES

CLIENT_ERROR_RATE_ALARM = 0.05
"""The share of 4xx answers past which someone should look: a game's own bad events stay well under it."""


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.Function],
        alarm_email: str | None,
        access_logs: logs.ILogGroup | None = None,
    ) -> None:
        """``access_logs``: the API's access log group, where the usage plans' throttled answers (429) are
        counted (API Gateway publishes no metric of its own for them)."""
        super().__init__(scope, construct_id)
        self._access_logs = access_logs
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
        # enforce_ssl gives the topic a policy of its own, which replaces the default one: without this grant no
        # alarm could publish to it.
        self.alarm_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.alarm_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._functions = functions
        self.alarms: list[cloudwatch.Alarm] = []
        self._add_alarms()
        self._add_caller_alarms()
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=DASHBOARD_NAME, default_interval=Duration.hours(3)
        )
        DashboardWidgets(self.dashboard, functions).add(self.alarms)

    # --- Alarms ------------------------------------------------------------------------------------------

    def _add_alarms(self) -> None:
        for route in ROUTES:
            self._alarm(
                f"LatencyP90 {route_label(route)}",
                route_metric(route, "Latency", LATENCY_ALARM_STATISTIC),
                LATENCY_ALARM_THRESHOLD_MS,
                f"p90 latency of {route_label(route)} above {LATENCY_ALARM_THRESHOLD_MS} ms",
            )
            # A handler's own 503 (Keyspaces down) is a 5xx of its route, not a function error.
            self._alarm(
                f"ServerErrors {route_label(route)}",
                route_metric(route, "5XXError", "Sum"),
                ERROR_ALARM_THRESHOLD,
                f"{route_label(route)} answered {ERROR_ALARM_THRESHOLD} or more 5xx responses a minute",
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
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
            service_metric("RollupLagSeconds", "Maximum"),
            ROLLUP_LAG_ALARM_SECONDS,
            f"the rollup builder is more than {ROLLUP_LAG_ALARM_SECONDS} s behind the arrivals, or not running",
            # The builder reports every minute: a minute without its report means it did not run.
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        # Handlers answer 503 themselves when Keyspaces is down: 5xx at the API, not function errors.
        self._alarm(
            "ServerErrors api",
            api_metric("5XXError", "Sum"),
            ERROR_ALARM_THRESHOLD,
            f"the API answered {ERROR_ALARM_THRESHOLD} or more 5xx responses a minute",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )

    def _add_caller_alarms(self) -> None:
        """Callers refused or throttled, and the back ends refusing work (issue: who may do what)."""
        self._alarm(
            "ClientErrorRate api",
            api_metric("4XXError", "Average"),
            CLIENT_ERROR_RATE_ALARM,
            f"more than {CLIENT_ERROR_RATE_ALARM:.0%} of the API's answers are 4xx: refused tokens or "
            "signatures, a client sending bad events, or throttling",
        )
        if self._access_logs is not None:
            throttled = logs.MetricFilter(
                self,
                "ThrottledRequestsFilter",
                log_group=self._access_logs,
                metric_namespace=METRICS_NAMESPACE,
                metric_name="ThrottledRequests",
                filter_pattern=logs.FilterPattern.string_value("$.status", "=", "429"),
                metric_value="1",
                default_value=0,
            )
            self._alarm(
                "Throttled api",
                throttled.metric(statistic="Sum", period=PERIOD),
                ERROR_ALARM_THRESHOLD,
                f"the API answered {ERROR_ALARM_THRESHOLD} or more 429s a minute: a key's usage plan or a "
                "function's concurrency is exhausted",
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        for name, handler in sorted(self._functions.items()):
            self._alarm(
                f"Throttles {name}",
                handler.metric_throttles(statistic="Sum", period=PERIOD),
                1,
                f"Lambda refused invocations of the {name} function (concurrency exhausted)",
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        for table in TABLES:
            throttles = {
                kind.lower(): cloudwatch.Metric(
                    namespace="AWS/Cassandra",
                    metric_name=f"{kind}ThrottleEvents",
                    dimensions_map={"Keyspace": KEYSPACE, "TableName": table.name},
                    statistic="Sum",
                    period=PERIOD,
                )
                for kind in ("Read", "Write")
            }
            self._alarm(
                f"KeyspacesThrottles {table.name}",
                cloudwatch.MathExpression(
                    expression="FILL(read, 0) + FILL(write, 0)", using_metrics=throttles, period=PERIOD
                ),
                1,
                f"Keyspaces throttled reads or writes of {table.name}",
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        self._alarm(
            "KeyspacesUserErrors",
            cloudwatch.Metric(
                namespace="AWS/Cassandra", metric_name="UserErrors", statistic="Sum", period=PERIOD
            ),
            ERROR_ALARM_THRESHOLD,
            "Keyspaces refused requests as the client's fault (a missing grant, a statement it does not "
            "support, throttling): account-wide, so not all of it may be this service's",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "CacheErrors",
            service_metric("CacheErrors", "Sum"),
            ERROR_ALARM_THRESHOLD,
            f"the functions failed to reach the cache {ERROR_ALARM_THRESHOLD} or more times a minute (reads fall "
            "back to Keyspaces)",
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
