"""The checkov checks (and cfn-guard rules) that do not fit a function of the stack, each with its reason written
for that function, on the resource itself."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from infra_cdk.acknowledgements import acknowledge_cfn_guard, skip_checkov
from infra_cdk.function_definitions import FunctionDefinition

X_RAY_ACTIONS = (
    "X-Ray's PutTraceSegments and PutTelemetryRecords, which support no resource-level permissions"
)
"""The write actions every traced function's role holds on Resource *, as its acknowledgements name them."""


def skip_checkov_checks(
    definition: FunctionDefinition,
    function: lambda_.CfnFunction,
    role: iam.Role,
    environment: Mapping[str, str],
) -> None:
    """The checkov checks that do not fit these functions, each with its reason, on the resource itself."""
    if not definition.uses_data:
        outside_the_vpc = (
            "The player token authorizer reads no service data: it checks a token's signature against the "
            "studio login's published keys, which it fetches over the internet (the VPC's isolated subnets "
            "have no NAT). Outside the VPC it reaches nothing of the service's."
        )
        acknowledge_cfn_guard(function, "lambda_inside_vpc_check", outside_the_vpc)
        skip_checkov(function, "CKV_AWS_117", outside_the_vpc)
    skip_checkov(
        role,
        "CKV_AWS_111",
        (
            f"The only write actions on Resource * are {X_RAY_ACTIONS}, and those AWS requires for Lambda's VPC "
            "attachment: the ENIs (CreateNetworkInterface, DeleteNetworkInterface, Assign/UnassignPrivateIp"
            "Addresses) do not exist before Lambda creates them. Every table, log group and secret the function "
            "uses is named."
            if definition.uses_data
            else f"The only write actions on Resource * are {X_RAY_ACTIONS}; the role names everything else it may use."
        ),
    )
    skip_checkov(
        function,
        "CKV_AWS_173",
        f"The variables hold names, addresses and settings, no secret ({', '.join(sorted(environment))}; a "
        "secret's ARN names it, the key itself is read from Secrets Manager). Lambda encrypts them at rest with "
        "its AWS managed key; a customer-managed one would protect nothing more.",
    )
    skip_checkov(
        function,
        "CKV_AWS_116",
        (
            "EventBridge starts it every minute; a failed run leaves its arrivals for the next run to fold, "
            "and the rollup builder's error alarm fires. A dead-letter queue would only collect stale "
            "schedule events that nobody replays."
        )
        if definition.scheduled
        else (
            "API Gateway invokes it synchronously and receives its error; a dead-letter queue only receives "
            "failed asynchronous invocations, which this function never has."
        ),
    )
    if definition.reserved_concurrency is None:
        skip_checkov(
            function,
            "CKV_AWS_115",
            "A reservation is a hard cap on the function's environments, taken from the account's pool "
            "whether used or not; an API function's load is bounded at the gateway instead, by each key's "
            "usage plan (rate, burst and daily quota).",
        )
