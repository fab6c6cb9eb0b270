"""The rollup builder: a function no route calls, started every minute by EventBridge once per part of the
arrival log, one per part at a time, long enough to fold for most of the minute, and alarmed on when it fails
or falls behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from infra_cdk.functions import function_logical_id
from player_sessions.domain.country_starts.schedule import scheduled_at
from player_sessions.routes import ROLLUP_BUILDER
from player_sessions.settings import Settings
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import render


def test_the_builder_runs_one_per_part_at_a_time_without_snapstart_for_a_minute_at_most(
    synthesized: Synthesized,
) -> None:
    # When
    properties = synthesized.template_json["Resources"][function_logical_id(ROLLUP_BUILDER)]["Properties"]

    # Then
    assert properties["Handler"] == "handler.lambda_handler"
    assert properties["Architectures"] == ["arm64"]
    assert properties["ReservedConcurrentExecutions"] == Settings().rollup_parts == 4
    assert properties["Timeout"] == 70
    assert "SnapStart" not in properties
    assert "VpcConfig" in properties


def _delivered(target: dict, schedule_event: dict) -> dict:
    """The event EventBridge gives the function: the target's input template (a JSON object), each placeholder
    filled with the value its path names in the schedule's event; a placeholder outside quotes takes the value
    as JSON (a string quoted), as EventBridge fills it."""
    transformer = target["InputTransformer"]
    delivered = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value = schedule_event[path.removeprefix("$.")]
        delivered = delivered.replace(f'"<{name}>"', json.dumps(value)).replace(
            f"<{name}>", json.dumps(value)
        )
    return json.loads(delivered)


def test_an_eventbridge_rule_starts_each_parts_builder_every_minute_without_retries(
    synthesized: Synthesized,
) -> None:
    # Given
    builder_id = function_logical_id(ROLLUP_BUILDER)

    # When
    rules = [render(rule["Properties"]) for rule in synthesized.resources("AWS::Events::Rule").values()]

    # Then
    (rule,) = [r for r in rules if any(t["Arn"] == f"<{builder_id}.Arn>" for t in r["Targets"])]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert rule["State"] == "ENABLED"
    # Each target's event names its part and the moment the run was scheduled for (the schedule event's time,
    # from which the run counts when to return: domain.country_starts.schedule)
    schedule_event = {"time": "2026-11-28T10:00:00Z", "detail-type": "Scheduled Event"}
    delivered = [_delivered(target, schedule_event) for target in rule["Targets"]]
    assert sorted(event["part"] for event in delivered) == [0, 1, 2, 3]
    assert {scheduled_at(event) for event in delivered} == {datetime(2026, 11, 28, 10, 0, tzinfo=UTC)}
    for target in rule["Targets"]:
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
    permissions = [render(p["Properties"]) for p in synthesized.resources("AWS::Lambda::Permission").values()]
    assert any(
        p["Principal"] == "events.amazonaws.com" and p["FunctionName"] == f"<{builder_id}.Arn>"
        for p in permissions
    )


def test_lambda_neither_retries_a_failed_builder_run_nor_keeps_a_throttled_one_past_the_next_minute(
    synthesized: Synthesized,
) -> None:
    # When
    configs = [
        render(c["Properties"]) for c in synthesized.resources("AWS::Lambda::EventInvokeConfig").values()
    ]

    # Then the builder's asynchronous invocations (EventBridge's) are never retried by Lambda (its default: twice
    # on an error, up to 6 hours when throttled): the next minute's run of the part folds what one missed
    builder_id = function_logical_id(ROLLUP_BUILDER)
    (config,) = [c for c in configs if c["FunctionName"] == f"<{builder_id}>"]
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == 60


def test_the_builder_is_not_behind_the_api_and_has_no_alias(synthesized: Synthesized) -> None:
    # When
    aliases = [render(a["Properties"]) for a in synthesized.resources("AWS::Lambda::Alias").values()]
    integrations = str(synthesized.resources("AWS::ApiGateway::Method"))

    # Then
    builder_id = function_logical_id(ROLLUP_BUILDER)
    assert not any(builder_id in str(alias["FunctionName"]) for alias in aliases)
    assert builder_id not in integrations


def test_alarms_fire_when_the_builder_fails_or_falls_behind(synthesized: Synthesized) -> None:
    # When
    alarms = [render(a["Properties"]) for a in synthesized.resources("AWS::CloudWatch::Alarm").values()]

    # Then
    lag = [
        a
        for a in alarms
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "RollupLagSeconds"
            for m in a.get("Metrics", [])
        )
    ]
    assert len(lag) == 1 and lag[0]["Threshold"] == 30
    assert lag[0]["Metrics"][0]["MetricStat"]["Stat"] == "Maximum"
    # A builder that stopped running reports nothing: that must page too
    assert lag[0]["TreatMissingData"] == "breaching"
    errors = [
        a
        for a in alarms
        if a.get("MetricName") == "Errors"
        and a["Dimensions"] == [{"Name": "FunctionName", "Value": f"<{function_logical_id(ROLLUP_BUILDER)}>"}]
    ]
    assert len(errors) == 1 and errors[0]["Threshold"] == 1
