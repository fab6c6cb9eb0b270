"""The REST API is the route table: the same methods and paths, each to its function's live alias, behind an
API key, validated, throttled, logged and traced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra_cdk.functions import function_logical_id
from player_sessions.routes import ROUTES, Route
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import render


def resource_paths(synthesized: Synthesized) -> dict[str, str]:
    """Logical id of every API resource -> its full path, following the ParentId/PathPart chain."""
    (api_id,) = synthesized.resources("AWS::ApiGateway::RestApi")
    resources = synthesized.resources("AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in paths:
            properties = resources[logical_id]["Properties"]
            parent = properties["ParentId"]
            parent_path = (
                "" if parent == {"Fn::GetAtt": [api_id, "RootResourceId"]} else path_of(parent["Ref"])
            )
            paths[logical_id] = f"{parent_path}/{properties['PathPart']}"
        return paths[logical_id]

    for logical_id in resources:
        path_of(logical_id)
    return paths


def methods_by_route(synthesized: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    paths = resource_paths(synthesized)
    return {
        (method["Properties"]["HttpMethod"], paths[method["Properties"]["ResourceId"]["Ref"]]): method[
            "Properties"
        ]
        for method in synthesized.resources("AWS::ApiGateway::Method").values()
    }


def method_of(synthesized: Synthesized, route: Route) -> dict[str, Any]:
    return methods_by_route(synthesized)[(route.method, route.path)]


def test_api_routes_equal_the_route_table(synthesized: Synthesized) -> None:
    # When
    deployed = set(methods_by_route(synthesized))

    # Then
    assert deployed == {(route.method, route.path) for route in ROUTES}
    assert deployed == {
        ("POST", "/events"),
        ("POST", "/studio/events"),
        ("GET", "/players/{player_id}/sessions"),
        ("GET", "/health"),
        ("GET", "/countries/starts"),
        ("GET", "/countries/{country}/starts"),
        ("GET", "/countries/online"),
        ("GET", "/countries/session-lengths"),
        ("POST", "/players/{player_id}/erasure"),
        ("GET", "/erasures/{erasure_id}"),
        ("GET", "/players/{player_id}/export"),
    }


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_route_invokes_the_live_alias_of_its_function(synthesized: Synthesized, route: Route) -> None:
    # Given
    aliases = synthesized.resources("AWS::Lambda::Alias")

    # When
    integration = method_of(synthesized, route)["Integration"]

    # Then
    assert integration["Type"] == "AWS_PROXY"
    alias_id = render(integration["Uri"]).split("/functions/<")[1].split(">/invocations")[0]
    assert aliases[alias_id]["Properties"]["FunctionName"] == {"Ref": function_logical_id(route.function)}
    assert aliases[alias_id]["Properties"]["Name"] == "live"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_route_requires_an_api_key_and_is_validated(synthesized: Synthesized, route: Route) -> None:
    # Given
    (validator_id, validator) = next(iter(synthesized.resources("AWS::ApiGateway::RequestValidator").items()))

    # When
    method = method_of(synthesized, route)

    # Then
    assert method["ApiKeyRequired"] is True
    assert method["RequestValidatorId"] == {"Ref": validator_id}
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True


def test_required_parameters_follow_the_handlers_contract(synthesized: Synthesized) -> None:
    # When
    parameters = {
        route: methods_by_route(synthesized)[route].get("RequestParameters")
        for route in (
            ("GET", "/countries/starts"),
            ("GET", "/countries/{country}/starts"),
            ("GET", "/players/{player_id}/sessions"),
            ("GET", "/health"),
        )
    }

    # Then: path parameters and `hours` are required; the rest is optional
    assert parameters == {
        ("GET", "/countries/starts"): {"method.request.querystring.hours": True},
        ("GET", "/countries/{country}/starts"): {
            "method.request.path.country": True,
            "method.request.querystring.hours": True,
            "method.request.querystring.limit": False,
            "method.request.querystring.cursor": False,
        },
        ("GET", "/players/{player_id}/sessions"): {
            "method.request.path.player_id": True,
            "method.request.querystring.limit": False,
        },
        ("GET", "/health"): None,
    }


def test_ingest_body_must_be_a_non_empty_json_array_and_nothing_more(synthesized: Synthesized) -> None:
    """Batch size (413) and per-event validation (207) stay the handler's answers."""
    # Given
    (model_id, model) = next(iter(synthesized.resources("AWS::ApiGateway::Model").items()))

    # When
    method = methods_by_route(synthesized)[("POST", "/events")]

    # Then
    assert method["RequestModels"] == {"application/json": {"Ref": model_id}}
    assert model["Properties"]["ContentType"] == "application/json"
    assert model["Properties"]["Schema"] == {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "EventBatch",
        "type": "array",
        "minItems": 1,
    }


def test_gateway_validation_errors_answer_in_the_service_error_shape(synthesized: Synthesized) -> None:
    # When
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]["ResponseTemplates"]["application/json"]
        for r in synthesized.resources("AWS::ApiGateway::GatewayResponse").values()
    }

    # Then
    assert set(responses) == {
        "BAD_REQUEST_BODY",
        "BAD_REQUEST_PARAMETERS",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "MISSING_AUTHENTICATION_TOKEN",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    assert json.loads(responses.pop("UNAUTHORIZED")) == {"message": "Unauthorized", "errors": []}
    for template in responses.values():
        example = template.replace("$context.error.messageString", '"Invalid request body"')
        assert json.loads(example) == {"message": "Invalid request body", "errors": []}


def test_usage_plan_throttles_and_caps_the_api_key(synthesized: Synthesized) -> None:
    # Given
    (plan_id, plan) = next(iter(synthesized.resources("AWS::ApiGateway::UsagePlan").items()))
    (key_id,) = synthesized.resources("AWS::ApiGateway::ApiKey")
    (stage_id,) = synthesized.resources("AWS::ApiGateway::Stage")

    # When
    (plan_key,) = synthesized.resources("AWS::ApiGateway::UsagePlanKey").values()

    # Then
    assert plan["Properties"]["Throttle"] == {"RateLimit": 500, "BurstLimit": 1000}
    assert plan["Properties"]["Quota"] == {"Limit": 20_000_000, "Period": "DAY"}
    assert [s["Stage"] for s in plan["Properties"]["ApiStages"]] == [{"Ref": stage_id}]
    assert plan_key["Properties"] == {
        "KeyId": {"Ref": key_id},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": plan_id},
    }


def test_stage_writes_access_logs_traces_with_xray_and_publishes_per_method_metrics(
    synthesized: Synthesized,
) -> None:
    # When
    (stage,) = synthesized.resources("AWS::ApiGateway::Stage").values()
    properties = stage["Properties"]

    # Then
    assert properties["StageName"] == "v1"
    assert properties["TracingEnabled"] is True
    (log_group_id,) = [
        logical_id
        for logical_id in synthesized.resources("AWS::Logs::LogGroup")
        if "AccessLogs" in logical_id
    ]
    assert render(properties["AccessLogSetting"]["DestinationArn"]).endswith(f":log-group:<{log_group_id}>")
    access_log = json.loads(properties["AccessLogSetting"]["Format"])
    assert access_log["status"] == "$context.status"
    assert access_log["responseLatency"] == "$context.responseLatency"
    assert access_log["apiKeyId"] == "$context.identity.apiKeyId"
    assert properties["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "LoggingLevel": "ERROR",
            "MetricsEnabled": True,
            "ResourcePath": "/*",
        }
    ]
