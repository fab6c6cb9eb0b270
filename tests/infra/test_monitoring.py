"""Alarms when p90 latency exceeds 500 ms (per route and per function) or errors rise, to an encrypted SNS
topic; a dashboard of p50/p90/p99 per route and per function, errors, throttles, Keyspaces and the cache."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra_cdk.functions import function_logical_id
from player_sessions.routes import FUNCTIONS, ROUTES, LambdaFunction, Route
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import render


def alarms(synthesized: Synthesized) -> list[dict[str, Any]]:
    return [alarm["Properties"] for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()]


def alarmed_metric(alarm: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The alarm's metric (namespace, name, dimensions) and statistic, however CDK wrote it."""
    if "Metrics" in alarm:
        (query,) = alarm["Metrics"]
        stat = query["MetricStat"]
        metric = stat["Metric"]
        return {
            "Namespace": metric["Namespace"],
            "MetricName": metric["MetricName"],
            "Dimensions": {d["Name"]: d["Value"] for d in metric["Dimensions"]},
        }, stat["Stat"]
    return {
        "Namespace": alarm["Namespace"],
        "MetricName": alarm["MetricName"],
        "Dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
    }, alarm.get("ExtendedStatistic") or alarm["Statistic"]


def alarms_on(synthesized: Synthesized, namespace: str, metric_name: str, dimensions: dict) -> list[dict]:
    return [
        (alarm, stat)
        for alarm in alarms(synthesized)
        # Alarms on one metric (the Keyspaces throttling alarms add two: tests/infra/test_who_may_call.py)
        if len(alarm.get("Metrics", [alarm])) == 1
        for metric, stat in [alarmed_metric(alarm)]
        if (metric["Namespace"], metric["MetricName"], metric["Dimensions"])
        == (namespace, metric_name, dimensions)
    ]


def route_alarms(synthesized: Synthesized, route: Route, metric_name: str) -> list[dict]:
    """The alarms on API Gateway's per-method metric ``metric_name`` of ``route``."""
    dimensions = {"ApiName": "player-sessions", "Stage": "v1", "Method": route.method, "Resource": route.path}
    return alarms_on(synthesized, "AWS/ApiGateway", metric_name, dimensions)


def topic_ref(synthesized: Synthesized) -> dict[str, str]:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    return {"Ref": topic_id}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_p90_latency_over_500_ms_on_a_route_raises_an_alarm(synthesized: Synthesized, route: Route) -> None:
    # When
    found = route_alarms(synthesized, route, "Latency")

    # Then
    assert len(found) == 1
    alarm, stat = found[0]
    assert stat == "p90"
    assert alarm["Threshold"] == 500
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (3, 5)
    assert alarm["AlarmActions"] == [topic_ref(synthesized)]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_5xx_answers_of_a_route_raise_an_alarm(synthesized: Synthesized, route: Route) -> None:
    """A handler's own 503 (Keyspaces down) is not a function error: the route's 5xx are watched apart."""
    # When
    found = route_alarms(synthesized, route, "5XXError")

    # Then
    assert [(stat, alarm["Threshold"], alarm["ComparisonOperator"]) for alarm, stat in found] == [
        ("Sum", 5, "GreaterThanOrEqualToThreshold")
    ]
    assert found[0][0]["AlarmActions"] == [topic_ref(synthesized)]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_p90_duration_over_500_ms_and_rising_errors_of_a_function_raise_alarms(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    dimensions = {"FunctionName": {"Ref": function_logical_id(function)}}

    # When
    duration = alarms_on(synthesized, "AWS/Lambda", "Duration", dimensions)
    errors = alarms_on(synthesized, "AWS/Lambda", "Errors", dimensions)

    # Then
    assert [(stat, alarm["Threshold"], alarm["ComparisonOperator"]) for alarm, stat in duration] == [
        ("p90", 500, "GreaterThanThreshold")
    ]
    assert [(stat, alarm["Threshold"], alarm["ComparisonOperator"]) for alarm, stat in errors] == [
        ("Sum", 5, "GreaterThanOrEqualToThreshold")
    ]
    assert all(alarm["AlarmActions"] == [topic_ref(synthesized)] for alarm, _ in duration + errors)


def test_5xx_answers_of_the_api_raise_an_alarm(synthesized: Synthesized) -> None:
    # When
    found = alarms_on(
        synthesized, "AWS/ApiGateway", "5XXError", {"ApiName": "player-sessions", "Stage": "v1"}
    )

    # Then
    assert [(stat, alarm["Threshold"]) for alarm, stat in found] == [("Sum", 5)]


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_and_requires_tls(
    synthesized: Synthesized,
) -> None:
    # Given
    (topic,) = synthesized.resources("AWS::SNS::Topic").values()
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()

    # When
    (key_id, _) = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"]
    key = synthesized.resources("AWS::KMS::Key")[key_id]

    # Then
    assert key["Properties"]["EnableKeyRotation"] is True
    cloudwatch_grants = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [sorted(s["Action"]) for s in cloudwatch_grants] == [["kms:Decrypt", "kms:GenerateDataKey*"]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    denials = [s for s in statements if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in denials] == [{"Bool": {"aws:SecureTransport": "false"}}]
    # And the topic's own policy (it replaces the default one) lets this account's alarms publish
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert [(s["Principal"], s["Action"], s["Resource"]) for s in allowed] == [
        ({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", topic_ref(synthesized))
    ]
    assert allowed[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def dashboard(synthesized: Synthesized) -> dict[str, Any]:
    (board,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    return json.loads(render(board["Properties"]["DashboardBody"]))


def graphed(synthesized: Synthesized) -> list[tuple[str, list]]:
    """(widget title, metric line) for every metric line of the dashboard."""
    return [
        (widget["properties"]["title"], line)
        for widget in dashboard(synthesized)["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
    ]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_dashboard_shows_p50_p90_p99_latency_of_each_route(synthesized: Synthesized, route: Route) -> None:
    # When
    stats = [
        line[-1]["stat"]
        for _, line in graphed(synthesized)
        if line[:2] == ["AWS/ApiGateway", "Latency"] and route.path in line and route.method in line
    ]

    # Then
    assert stats == ["p50", "p90", "p99"]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_dashboard_shows_p50_p90_p99_duration_errors_and_throttles_of_each_function(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    name = f"<{function_logical_id(function)}>"

    # When
    lines = [
        (line[1], line[-1]["stat"])
        for _, line in graphed(synthesized)
        if line[0] == "AWS/Lambda" and name in line
    ]

    # Then
    assert lines == [
        ("Duration", "p50"),
        ("Duration", "p90"),
        ("Duration", "p99"),
        ("Errors", "Sum"),
        ("Throttles", "Sum"),
        ("ConcurrentExecutions", "Maximum"),
    ]


def test_dashboard_shows_keyspaces_and_cache_metrics(synthesized: Synthesized) -> None:
    # When
    widgets = {title for title, _ in graphed(synthesized)}
    expressions = [line[0]["expression"] for _, line in graphed(synthesized) if "expression" in line[0]]
    cache_metrics = {line[1] for _, line in graphed(synthesized) if line[0] == "AWS/ElastiCache"}

    # Then
    assert any("SuccessfulRequestLatency" in e and 'Keyspace="player_sessions"' in e for e in expressions)
    assert any("SystemErrors" in e for e in expressions)
    assert any("ConsumedWriteCapacityUnits" in e for e in expressions)
    assert cache_metrics == {
        "CacheHits",
        "CacheMisses",
        "SuccessfulReadRequestLatency",
        "SuccessfulWriteRequestLatency",
        "ElastiCacheProcessingUnits",
        "ThrottledCmds",
    }
    assert "Database latency seen by the functions" in widgets
