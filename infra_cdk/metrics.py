"""The metrics the alarms and the dashboard share: the alarm period, each route's API Gateway metric, and the
functions' own EMF metrics."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from infra_cdk.constants import ALARM_PERIOD_MINUTES, API_NAME, API_STAGE, METRICS_NAMESPACE, SERVICE_NAME
from player_sessions.routes import Route

PERIOD = Duration.minutes(ALARM_PERIOD_MINUTES)


def route_label(route: Route) -> str:
    return f"{route.method} {route.path}"


def api_metric(metric_name: str, statistic: str, route: Route | None = None) -> cloudwatch.Metric:
    """API Gateway's metric of the stage, or with ``route`` its per-method metric (the stage has detailed
    metrics on) for that route of the table."""
    per_method = {"Method": route.method, "Resource": route.path} if route is not None else {}
    return cloudwatch.Metric(
        namespace="AWS/ApiGateway",
        metric_name=metric_name,
        dimensions_map={"ApiName": API_NAME, "Stage": API_STAGE, **per_method},
        statistic=statistic,
        period=PERIOD,
        label=f"{route_label(route)} {statistic}" if route is not None else None,
    )


def route_metric(route: Route, metric_name: str, statistic: str) -> cloudwatch.Metric:
    return api_metric(metric_name, statistic, route)


def service_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """The functions' own EMF metrics (Powertools adds the ``service`` dimension)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=PERIOD,
        label=f"{name} {statistic}",
    )
