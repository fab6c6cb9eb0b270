"""Who may call what, in the template (docs/security.md): each method's authorization is its route's caller
(the player token authorizer, or IAM), the studio gets a policy for exactly its routes, a web ACL with managed
rules and per-caller rate limits guards the stage, and alarms watch refused and throttled callers."""

from __future__ import annotations

from typing import Any

import pytest

from infra_cdk.constants import API_STAGE, KEYSPACE, WAF_ADDRESS_LIMIT, WAF_PLAYER_TOKEN_LIMIT
from infra_cdk.functions import function_logical_id
from player_sessions.player_tokens import AUTHORIZATION_HEADER_REGEX
from player_sessions.routes import AUTHORIZER, AUTHORIZER_CACHE_SECONDS, ROUTES, Caller
from player_sessions.schema import TABLES
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import as_list, render
from tests.infra.test_api import method_of

AUTHORIZER_ID = function_logical_id(AUTHORIZER)


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def test_a_game_clients_route_takes_the_player_token_authorizer_with_a_short_cache(synthesized: Synthesized):
    authorizer_id, authorizer = only(synthesized.resources("AWS::ApiGateway::Authorizer"))
    properties = authorizer["Properties"]

    assert properties["Type"] == "TOKEN"
    assert properties["IdentitySource"] == "method.request.header.Authorization"
    assert properties["IdentityValidationExpression"] == AUTHORIZATION_HEADER_REGEX
    assert properties["AuthorizerResultTtlInSeconds"] == AUTHORIZER_CACHE_SECONDS
    assert f"{AUTHORIZER_ID}Alias" in str(render(properties["AuthorizerUri"]))
    for route in ROUTES:
        method = method_of(synthesized, route)
        if route.caller is Caller.PLAYER:
            assert (method["AuthorizationType"], method["AuthorizerId"]) == ("CUSTOM", {"Ref": authorizer_id})
        else:
            assert method["AuthorizationType"] == "AWS_IAM", route
            assert "AuthorizerId" not in method
        # API keys and usage plans stay, for throttling and quotas
        assert method["ApiKeyRequired"] is True


def test_the_authorizer_reaches_no_data_and_trusts_the_login_given_at_deploy_time(synthesized: Synthesized):
    function = synthesized.resources("AWS::Lambda::Function")[AUTHORIZER_ID]["Properties"]
    variables = function["Environment"]["Variables"]
    parameters = synthesized.template_json["Parameters"]

    assert "VpcConfig" not in function
    assert {name: variables[name] for name in variables if "PLAYER_TOKEN" in name} == {
        "PLAYER_SESSIONS_PLAYER_TOKEN_ISSUER": {"Ref": "PlayerTokenIssuer"},
        "PLAYER_SESSIONS_PLAYER_TOKEN_AUDIENCE": {"Ref": "PlayerTokenAudience"},
        "PLAYER_SESSIONS_PLAYER_TOKEN_JWKS_URL": {"Ref": "PlayerTokenJwksUrl"},
    }
    assert not any("CASSANDRA" in name or "KEYSPACE" in name or "REDIS" in name for name in variables)
    assert parameters["PlayerTokenJwksUrl"]["AllowedPattern"].startswith("^https://")
    role = render(function["Role"])
    statements = [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if any(render(r) == role.replace(".Arn", "") for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert not any(action.startswith("cassandra:") for s in statements for action in as_list(s["Action"]))


def test_the_studio_policy_allows_invoking_exactly_the_studios_routes(synthesized: Synthesized):
    policies = {
        logical_id: resource["Properties"]
        for logical_id, resource in synthesized.resources("AWS::IAM::ManagedPolicy").items()
        if "StudioAccessPolicy" in logical_id
    }
    (policy,) = policies.values()
    (statement,) = policy["PolicyDocument"]["Statement"]
    resources = {
        str(render(resource)).split(f"/{API_STAGE}/", 1)[1] for resource in as_list(statement["Resource"])
    }

    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "execute-api:Invoke"
    assert resources == {
        route.method + "/".join("*" if p.startswith("{") else p for p in route.path.split("/"))
        for route in ROUTES
        if route.caller is Caller.STUDIO
    }


def test_a_web_acl_on_the_stage_has_the_common_rules_and_rate_limits_per_token_and_per_address_for_all(
    synthesized: Synthesized,
):
    acl_id, acl = only(synthesized.resources("AWS::WAFv2::WebACL"))
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    _, association = only(synthesized.resources("AWS::WAFv2::WebACLAssociation"))

    assert acl["Properties"]["Scope"] == "REGIONAL"
    assert (
        rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]["VendorName"] == "AWS"
    )
    assert "AWSManagedRulesKnownBadInputsRuleSet" in rules
    per_token = rules["RateLimitPerPlayerToken"]["Statement"]["RateBasedStatement"]
    assert per_token["Limit"] == WAF_PLAYER_TOKEN_LIMIT
    assert per_token["CustomKeys"] == [
        {"Header": {"Name": "authorization", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    ]
    assert rules["RateLimitPerPlayerToken"]["Action"] == {"Block": {}}
    per_address = rules["RateLimitPerAddress"]["Statement"]["RateBasedStatement"]
    assert (per_address["Limit"], per_address["AggregateKeyType"]) == (WAF_ADDRESS_LIMIT, "IP")
    # Every request counts per address, made-up player tokens included (each would be a new per-token key).
    assert "ScopeDownStatement" not in per_address
    assert per_token["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "Bearer "
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert f"/stages/<ApiDeploymentStage{API_STAGE}" in str(render(association["Properties"]["ResourceArn"]))


def alarm_metrics(synthesized: Synthesized) -> list[dict[str, Any]]:
    return [alarm["Properties"] for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()]


def test_alarms_watch_refused_and_throttled_callers(synthesized: Synthesized):
    alarms = alarm_metrics(synthesized)
    by_metric = {(a.get("Namespace"), a.get("MetricName")): a for a in alarms if "MetricName" in a}
    (throttled_filter,) = synthesized.resources("AWS::Logs::MetricFilter").values()

    assert by_metric[("AWS/ApiGateway", "4XXError")]["Statistic"] == "Average"
    assert throttled_filter["Properties"]["FilterPattern"] == '{ $.status = "429" }'
    throttled_metric = throttled_filter["Properties"]["MetricTransformations"][0]["MetricName"]
    assert any(name == throttled_metric for _, name in by_metric)
    assert ("AWS/Cassandra", "UserErrors") in by_metric
    assert any(
        query["MetricStat"]["Metric"]["MetricName"] == "CacheErrors"
        for alarm in alarms
        for query in alarm.get("Metrics", [])
        if "MetricStat" in query
    )


@pytest.mark.parametrize("function", ["ingest_events", "player_sessions", "country_starts", "authorizer"])
def test_lambda_throttles_of_each_function_raise_an_alarm(synthesized: Synthesized, function: str):
    throttles = [
        a
        for a in alarm_metrics(synthesized)
        if a.get("MetricName") == "Throttles" and a["Namespace"] == "AWS/Lambda"
    ]
    functions = {render(d["Value"]) for a in throttles for d in a["Dimensions"]}

    assert any(function.replace("_", "").lower() in str(name).lower() for name in functions), functions


def test_keyspaces_throttling_of_each_table_raises_an_alarm(synthesized: Synthesized):
    watched = {
        dimension["Value"]
        for alarm in alarm_metrics(synthesized)
        for query in alarm.get("Metrics", [])
        if query.get("MetricStat", {}).get("Metric", {}).get("MetricName")
        in ("ReadThrottleEvents", "WriteThrottleEvents")
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "TableName"
    }
    keyspaces = {
        dimension["Value"]
        for alarm in alarm_metrics(synthesized)
        for query in alarm.get("Metrics", [])
        for dimension in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
        if dimension["Name"] == "Keyspace"
    }

    assert watched == {table.name for table in TABLES}
    assert keyspaces == {KEYSPACE}


def test_every_alarm_shows_on_the_dashboard(synthesized: Synthesized):
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    body = str(render(dashboard["Properties"]["DashboardBody"]))

    assert all(f"<{alarm_id}.Arn>" in body for alarm_id in synthesized.resources("AWS::CloudWatch::Alarm"))
