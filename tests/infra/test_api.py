"""The REST API is the route table: the same methods and paths, each to its function's live alias, behind an
API key, validated, throttled, logged and traced."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk.assertions import Template

from infra_cdk.functions import function_logical_id
from infra_cdk.usage_plans import GAME_TITLES_CONTEXT_KEY, UsagePlans, game_titles
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


def test_the_validator_checks_parameters_and_leaves_every_body_to_the_handler(
    synthesized: Synthesized,
) -> None:
    """SPEC.md's order for a body (415, 413, then 400 naming what is wrong; per-event validation with partial
    success) is the handler's: a model would answer a 20 KB body that is not JSON 400 instead of 413."""
    # Given
    ((validator_id, validator),) = synthesized.resources("AWS::ApiGateway::RequestValidator").items()

    # When
    methods = methods_by_route(synthesized)

    # Then
    assert validator["Properties"]["ValidateRequestParameters"] is True
    assert validator["Properties"]["ValidateRequestBody"] is False
    assert synthesized.resources("AWS::ApiGateway::Model") == {}
    assert all(method["RequestValidatorId"] == {"Ref": validator_id} for method in methods.values())
    assert all("RequestModels" not in method for method in methods.values())


def test_gateway_validation_errors_answer_in_the_service_error_shape(synthesized: Synthesized) -> None:
    # When
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]["ResponseTemplates"]["application/json"]
        for r in synthesized.resources("AWS::ApiGateway::GatewayResponse").values()
    }

    # Then every answer API Gateway makes itself has a message: its own, or the stack's where its own is
    # null (a failed authorizer)
    assert set(responses) == {
        "BAD_REQUEST_PARAMETERS",
        "UNAUTHORIZED",
        "AUTHORIZER_FAILURE",
        "AUTHORIZER_CONFIGURATION_ERROR",
        "ACCESS_DENIED",
        "MISSING_AUTHENTICATION_TOKEN",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    fixed = {
        "UNAUTHORIZED": "Unauthorized",
        "AUTHORIZER_FAILURE": "Internal server error",
        "AUTHORIZER_CONFIGURATION_ERROR": "Internal server error",
    }
    for response_type, message in fixed.items():
        assert json.loads(responses.pop(response_type)) == {"message": message, "errors": []}
    for template in responses.values():
        example = template.replace(
            "$context.error.messageString", '"Missing required request parameters: [h]"'
        )
        assert json.loads(example) == {"message": "Missing required request parameters: [h]", "errors": []}


def test_each_game_title_and_the_studio_have_a_key_and_a_usage_plan_of_their_own(
    synthesized: Synthesized,
) -> None:
    # Given the template of the default titles
    keys = synthesized.resources("AWS::ApiGateway::ApiKey")
    plans = synthesized.resources("AWS::ApiGateway::UsagePlan")
    (stage_id,) = synthesized.resources("AWS::ApiGateway::Stage")

    # When each plan's key is looked up
    key_of_plan = {
        link["Properties"]["UsagePlanId"]["Ref"]: link["Properties"]["KeyId"]["Ref"]
        for link in synthesized.resources("AWS::ApiGateway::UsagePlanKey").values()
    }

    # Then the default game's key and the studio's are apart, each throttled and capped by a plan of its own
    assert sorted(key["Properties"]["Name"] for key in keys.values()) == [
        "player-sessions-default",
        "player-sessions-studio",
    ]
    assert sorted(key_of_plan) == sorted(plans) and sorted(key_of_plan.values()) == sorted(keys)
    for plan_id, plan in plans.items():
        assert plan["Properties"]["UsagePlanName"] == keys[key_of_plan[plan_id]]["Properties"]["Name"]
        assert plan["Properties"]["Throttle"] == {"RateLimit": 500, "BurstLimit": 1000}
        assert plan["Properties"]["Quota"] == {"Limit": 20_000_000, "Period": "DAY"}
        assert [s["Stage"] for s in plan["Properties"]["ApiStages"]] == [{"Ref": stage_id}]
    outputs = synthesized.template_json["Outputs"]
    assert {outputs["ApiKeyId"]["Value"]["Ref"], outputs["StudioApiKeyId"]["Value"]["Ref"]} == set(keys)


def test_the_game_titles_given_at_deploy_time_each_get_a_key_and_a_plan() -> None:
    # Given a stack with an API, deployed for two titles
    app = App(context={GAME_TITLES_CONTEXT_KEY: "alpha,beta-2"})
    stack = Stack(app, "Titles")
    api = apigateway.RestApi(stack, "Api")
    api.root.add_method("GET")

    # When its keys and plans are made from the context
    UsagePlans(
        stack, "Plans", api=api, titles=game_titles(stack.node.try_get_context(GAME_TITLES_CONTEXT_KEY))
    )
    template = Template.from_stack(stack).to_json()["Resources"]

    # Then each title and the studio have a key, a plan and the link between them
    names = sorted(
        r["Properties"]["Name"] for r in template.values() if r["Type"] == "AWS::ApiGateway::ApiKey"
    )
    assert names == ["player-sessions-alpha", "player-sessions-beta-2", "player-sessions-studio"]
    plan_names = sorted(
        r["Properties"]["UsagePlanName"]
        for r in template.values()
        if r["Type"] == "AWS::ApiGateway::UsagePlan"
    )
    assert plan_names == names
    assert sum(r["Type"] == "AWS::ApiGateway::UsagePlanKey" for r in template.values()) == 3


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (None, ("default",)),
        ("alpha", ("alpha",)),
        (" alpha , beta-2 ", ("alpha", "beta-2")),
        (["alpha", "beta"], ("alpha", "beta")),
    ],
)
def test_game_titles_are_read_from_a_comma_separated_list(context, expected) -> None:
    assert game_titles(context) == expected


@pytest.mark.parametrize("context", ["", "Alpha", "studio", "alpha,alpha", "-alpha", "a" * 33, "al pha", 7])
def test_a_game_title_that_cannot_name_a_key_is_refused_at_synthesis(context) -> None:
    with pytest.raises(ValueError, match="gameTitles"):
        game_titles(context)


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
