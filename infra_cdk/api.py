"""The REST API: one resource and method per entry of the route table, each behind an API key, and each with
the proof of identity its caller presents (docs/security.md): the player token authorizer on a game client's
route, IAM (SigV4) on the studio's and the administration's, each under a managed policy of its own to attach to
the studio's roles; a WAF web ACL on the stage.

Which parameters a method requires is read from the checked-in OpenAPI document, which the local gateway
generates from the handlers' own validation: API Gateway rejects a request without them before a function
runs. Values are still validated by the handlers (ranges, patterns), which answer in the service's error
shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra_cdk.acknowledgements import acknowledge_cfn_guard, skip_checkov
from infra_cdk.constants import (
    API_NAME,
    API_STAGE,
    AUTHORIZER_FAILED_MESSAGE,
)
from infra_cdk.log_groups import LogGroups
from infra_cdk.method_requests import load_openapi, openapi_operation, request_parameters
from infra_cdk.usage_plans import GAME_TITLES_CONTEXT_KEY, UsagePlans, game_titles
from infra_cdk.waf import WebAcl
from player_sessions.player_tokens import AUTHORIZATION_HEADER_REGEX
from player_sessions.routes import AUTHORIZER, AUTHORIZER_CACHE_SECONDS, ROUTES, Caller, Route

JSON = "application/json"
# Gateway answers in the service's error shape. messageString is already a quoted JSON string.
ERROR_TEMPLATE = '{"message": $context.error.messageString, "errors": []}'
ACCESS_LOG_FORMAT = apigateway.AccessLogFormat.custom(
    json.dumps(
        {
            "requestId": apigateway.AccessLogField.context_request_id(),
            "requestTime": apigateway.AccessLogField.context_request_time(),
            "ip": apigateway.AccessLogField.context_identity_source_ip(),
            "apiKeyId": apigateway.AccessLogField.context_identity_api_key_id(),
            "httpMethod": apigateway.AccessLogField.context_http_method(),
            "resourcePath": apigateway.AccessLogField.context_resource_path(),
            "status": apigateway.AccessLogField.context_status(),
            "protocol": apigateway.AccessLogField.context_protocol(),
            "responseLength": apigateway.AccessLogField.context_response_length(),
            "responseLatency": apigateway.AccessLogField.context_response_latency(),
            "integrationLatency": apigateway.AccessLogField.context_integration_latency(),
            "errorType": apigateway.AccessLogField.context_error_response_type(),
            "validationError": apigateway.AccessLogField.context_error_validation_error_string(),
            "xrayTraceId": apigateway.AccessLogField.context_xray_trace_id(),
        }
    )
)


def _error_template(message: str | None) -> str:
    """A gateway response's body: API Gateway's own message (None), or ``message``."""
    return ERROR_TEMPLATE if message is None else json.dumps({"message": message, "errors": []})


def wildcard_path(path: str) -> str:
    """The route's path as an execute-api ARN names it: each ``{parameter}`` matches any value."""
    return "/".join("*" if part.startswith("{") else part for part in path.split("/"))


class RestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        targets: Mapping[str, lambda_.IFunction],
        log_groups: LogGroups,
    ) -> None:
        """``targets``: what serves each function of the route table, by function name."""
        super().__init__(scope, construct_id)
        self.access_logs = log_groups.log_group(self, "AccessLogs")
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=API_NAME,
            description="Player session service: ingest session events, starts per country, player sessions",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # API Gateway writes access and execution logs through one role per account and region.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            api_key_source_type=apigateway.ApiKeySourceType.HEADER,
            default_method_options=apigateway.MethodOptions(api_key_required=True),
            deploy_options=apigateway.StageOptions(
                stage_name=API_STAGE,
                tracing_enabled=True,
                # Per-method metrics: the dashboard's and alarms' latency per route needs them.
                metrics_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=ACCESS_LOG_FORMAT,
            ),
        )
        self.api.add_gateway_response(
            "BAD_REQUEST_PARAMETERSResponse",
            type=apigateway.ResponseType.BAD_REQUEST_PARAMETERS,
            templates={JSON: ERROR_TEMPLATE},
        )
        # Required parameters only. A body is the handler's to judge, in SPEC.md's order (415, 413, then 400
        # naming what is wrong, and per-event validation with partial success): a model here would answer a
        # 20 KB body that is not JSON 400 instead of 413, and say only "Invalid request body".
        self.validator = self.api.add_request_validator(
            "RequestValidator",
            request_validator_name="parameters",
            validate_request_parameters=True,
            validate_request_body=False,
        )
        self.player_token_authorizer = apigateway.TokenAuthorizer(
            self,
            "PlayerTokenAuthorizer",
            handler=targets[AUTHORIZER.name],
            authorizer_name="player-token",
            identity_source=apigateway.IdentitySource.header("Authorization"),
            validation_regex=AUTHORIZATION_HEADER_REGEX,
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS),
        )
        # Every answer API Gateway generates itself carries the service's error shape too: the types above, and
        # through the defaults every other one (an invalid API key, throttling, a quota, an integration timeout).
        for response_type, message in (
            (apigateway.ResponseType.UNAUTHORIZED, "Unauthorized"),
            (apigateway.ResponseType.AUTHORIZER_FAILURE, AUTHORIZER_FAILED_MESSAGE),
            (apigateway.ResponseType.AUTHORIZER_CONFIGURATION_ERROR, AUTHORIZER_FAILED_MESSAGE),
            (apigateway.ResponseType.ACCESS_DENIED, None),
            (apigateway.ResponseType.MISSING_AUTHENTICATION_TOKEN, None),
            (apigateway.ResponseType.DEFAULT_4_XX, None),
            (apigateway.ResponseType.DEFAULT_5_XX, None),
        ):
            self.api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                templates={JSON: _error_template(message)},
            )
        openapi = load_openapi()
        self.methods: dict[Route, apigateway.Method] = {
            route: self._add_route(route, openapi_operation(openapi, route), targets[route.function.name])
            for route in ROUTES
        }
        for permission in targets[AUTHORIZER.name].node.children:
            if isinstance(permission, lambda_.CfnPermission):
                acknowledge_cfn_guard(
                    permission,
                    "lambda_function_public_access_prohibited_check",
                    "Not public: only API Gateway may invoke, and only as this API's player token authorizer "
                    "(SourceArn is the authorizer's execute-api ARN, built with Fn::Join, which the rule does not "
                    "read).",
                )
        self.caller_policies = {
            caller: self._caller_policy(caller)
            for caller in (Caller.STUDIO, Caller.ADMIN)
            if self._routes_of(caller)
        }
        self.web_acl = WebAcl(self, "WebAcl", stage=self.api.deployment_stage)
        self.usage_plans = UsagePlans(
            self,
            "UsagePlans",
            api=self.api,
            titles=game_titles(self.node.try_get_context(GAME_TITLES_CONTEXT_KEY)),
        )
        self._acknowledge_nag_findings()
        skip_checkov(
            self.api.deployment_stage,
            "CKV_AWS_120",
            "A stage cache keys answers by URL, not by the data behind them: it would serve a player's sessions "
            "or a country's starts for its TTL after a write changed them. The service caches in ElastiCache "
            "under generations that every write bumps (docs/decisions.md, Cache); a stage cache also bills "
            "every hour it exists.",
        )

    def _add_route(
        self, route: Route, operation: Mapping[str, Any], target: lambda_.IFunction
    ) -> apigateway.Method:
        player = route.caller is Caller.PLAYER
        method = self.api.root.resource_for_path(route.path).add_method(
            route.method,
            apigateway.LambdaIntegration(target, allow_test_invoke=False),
            operation_name=operation.get("operationId"),
            authorization_type=apigateway.AuthorizationType.CUSTOM
            if player
            else apigateway.AuthorizationType.IAM,
            authorizer=self.player_token_authorizer if player else None,
            api_key_required=True,
            request_validator=self.validator,
            request_parameters=request_parameters(operation) or None,
        )
        for permission in method.node.children:
            if isinstance(permission, lambda_.CfnPermission):
                acknowledge_cfn_guard(
                    permission,
                    "lambda_function_public_access_prohibited_check",
                    "Not public: only API Gateway may invoke, and only from this route of this API (SourceArn is "
                    "the route's execute-api ARN). The rule accepts only a literal SourceArn or a Ref/GetAtt, "
                    "and an environment-agnostic stack builds that ARN with Fn::Join.",
                )
        return method

    def _routes_of(self, caller: Caller) -> list[Route]:
        return [route for route in ROUTES if route.caller is caller]

    def _caller_policy(self, caller: Caller) -> iam.ManagedPolicy:
        """What a studio's role needs to call the routes of ``caller``, and nothing else: attach it to the
        servers' and dashboards' roles (or the administrators')."""
        policy = iam.ManagedPolicy(
            self,
            f"{caller.value.capitalize()}AccessPolicy",
            description=f"Invoke the player session API's {caller.value} routes (SigV4-signed requests)",
            statements=[
                iam.PolicyStatement(
                    sid=f"Invoke{caller.value.capitalize()}Routes",
                    actions=["execute-api:Invoke"],
                    resources=[
                        self.api.arn_for_execute_api(route.method, wildcard_path(route.path), API_STAGE)
                        for route in self._routes_of(caller)
                    ],
                )
            ],
        )
        api_id = Stack.of(self).get_logical_id(self.api.node.default_child)  # type: ignore[arg-type]
        for route in self._routes_of(caller):
            if "{" in route.path:
                resource = (
                    f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<{api_id}>/{API_STAGE}/"
                    f"{route.method}{wildcard_path(route.path)}"
                )
                Validations.of(policy).acknowledge(
                    Acknowledgment(
                        id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{resource}]",
                        reason=f"The one route {route.method} {route.path}: its path parameter matches any "
                        "value, as the route itself does.",
                    )
                )
        return policy

    def _acknowledge_nag_findings(self) -> None:
        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-APIG2",
                reason=(
                    "Request parameters are validated by API Gateway; bodies by the ingest handler, in SPEC.md's "
                    "order (415, 413, then 400 naming the fault, and each event on its own with partial success "
                    "207): a body model here would answer a 20 KB body that is not JSON 400 instead of 413, and "
                    "say only 'Invalid request body'."
                ),
            ),
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-COG4",
                reason=(
                    "No Cognito user pool: game clients present the studio's own login tokens, checked by the "
                    "player token authorizer (a Lambda authorizer: the studio keeps its login), and the "
                    "studio's servers sign with IAM (docs/security.md)."
                ),
            ),
            Acknowledgment(
                id=(
                    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AmazonAPIGatewayPushToCloudWatchLogs]"
                ),
                reason=(
                    "The account-wide API Gateway logging role uses AmazonAPIGatewayPushToCloudWatchLogs, "
                    "the policy AWS documents for it: API Gateway writes every API's log groups in the "
                    "region through this one role, so it cannot be scoped to this API's groups."
                ),
            ),
        )
