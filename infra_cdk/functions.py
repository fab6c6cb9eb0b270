"""The Lambda functions: the route table's three, the player token authorizer and the rollup builder; their
dependency layer, roles and settings."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnParameter, Duration, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_cdk.acknowledgements import skip_checkov
from infra_cdk.constants import (
    CURSOR_SECRET_LENGTH,
    CURSOR_SECRET_READERS,
    LAMBDA_ALIAS,
    LAMBDA_PYTHON_VERSION,
    LAYER_BUILD_DIR,
    PLAYER_HASH_SECRET_READERS,
    ROLLUP_BUILDER_SCHEDULE_MINUTES,
    ROLLUP_PARTS,
)
from infra_cdk.data import KEEP_ONCE_CREATED, KeyspacesData
from infra_cdk.function_checks import X_RAY_ACTIONS, skip_checkov_checks
from infra_cdk.function_definitions import (
    ALL_FUNCTION_DEFINITIONS,
    ROLLUP_BUILDER_DEFINITION,
    Deployment,
    FunctionDefinition,
)
from infra_cdk.log_groups import LogGroups
from infra_cdk.network import PRIVATE_SUBNETS
from player_sessions.access import table_access
from player_sessions.domain.country_starts.schedule import SCHEDULED_AT
from player_sessions.routes import LambdaFunction
from player_sessions.settings import DatabaseMode

RULE_TARGETS = 5
"""EventBridge's most targets per rule."""
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".cassandra-password"]
"""Never packaged: build leftovers, and a local role's password file should one be left in a function's folder."""
# How cdk-nag spells the ARN of KeyspacesData.system_tables_arn in its findings.
SYSTEM_KEYSPACES_ARN = "arn:<AWS::Partition>:cassandra:<AWS::Region>:<AWS::AccountId>:/keyspace/system*"

# What Lambda needs to attach a function to the VPC: the same actions as the AWS managed policy
# AWSLambdaVPCAccessExecutionRole, written out so nothing else comes along. EC2's Describe* actions support no
# resource-level permissions, and the ENIs Lambda creates do not exist before it creates them, so AWS requires
# Resource "*" here. DescribeVpcEndpoints and DescribeNetworkInterfaces also let Keyspaces list the interface
# endpoint's addresses in system.peers, which the driver uses to open more than one connection.
VPC_ACCESS_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeVpcEndpoints",
]


def lambda_runtime() -> lambda_.Runtime:
    """The managed runtime of LAMBDA_PYTHON_VERSION, the version the layer's wheels are built for."""
    runtime = getattr(lambda_.Runtime, f"PYTHON_{LAMBDA_PYTHON_VERSION.replace('.', '_')}", None)
    if not isinstance(runtime, lambda_.Runtime):
        raise ValueError(f"this aws-cdk-lib has no Lambda runtime for Python {LAMBDA_PYTHON_VERSION}")
    return runtime


def function_logical_id(function: LambdaFunction) -> str:
    """Stable template ids (``IngestEventsFunction``), the names ``sam local invoke`` takes."""
    return "".join(part.capitalize() for part in function.name.split("_")) + "Function"


class LambdaFunctions(Construct):
    """One function per entry of ``infra_cdk.function_definitions.FUNCTION_DEFINITIONS`` (the route table's
    functions), invoked through its ``live`` alias, and the rollup builder, invoked every minute by an
    EventBridge rule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        data: KeyspacesData,
        redis_url: str,
        log_groups: LogGroups,
    ) -> None:
        super().__init__(scope, construct_id)
        self._log_groups = log_groups
        if not (LAYER_BUILD_DIR / "python").is_dir():
            raise FileNotFoundError(
                f"the dependency layer is not built in {LAYER_BUILD_DIR}: run `make synth` "
                "(or `uv run python -m player_sessions_local.build.layer`) first"
            )
        runtime = lambda_runtime()
        # Graviton: cheaper per GB-second than x86, and the layer's wheels are built for it (aarch64).
        architecture = lambda_.Architecture.ARM_64
        self.layer = lambda_.LayerVersion(
            self,
            "DependenciesLayer",
            code=lambda_.Code.from_asset(str(LAYER_BUILD_DIR), exclude=ASSET_EXCLUDES),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="Runtime dependencies (aarch64 wheels) and the shared player_sessions package",
        )
        self.cursor_secret = self._hmac_key(
            "CursorSigningKey",
            "HMAC key that signs the page cursors of the country starts listing",
            not_rotated=(
                "The key only signs opaque page cursors, which are meant to be followed within minutes. "
                "Rotating it would invalidate every cursor in flight for no gain; it is replaced by "
                "redeploying with a new secret if it ever leaks."
            ),
            not_customer_managed=(
                "Encrypted with Secrets Manager's AWS managed key; only the country function's role may read it, "
                "and what it holds signs page cursors, not player data. A customer-managed key would add a key "
                "policy to keep in step with that one grant, and protect nothing more."
            ),
        )
        self.player_hash_secret = self._hmac_key(
            "PlayerHashKey",
            "HMAC key of the player id's keyed hash: the index of each player's rows and the erasure records",
            not_rotated=(
                "Every player index partition and erasure record is stored under a hash made with this key: "
                "rotating it would orphan them (an erased player's replays would be stored again). It is kept "
                "when the stack is deleted, for the same reason."
            ),
            not_customer_managed=(
                "Encrypted with Secrets Manager's AWS managed key; only the ingest and privacy functions' roles "
                "may read it. It hashes ids, it encrypts nothing; a customer-managed key would add a key policy "
                "to keep in step with those grants, and protect nothing more."
            ),
        )
        self.player_hash_secret.apply_removal_policy(KEEP_ONCE_CREATED)
        deployment = Deployment(
            database_mode=DatabaseMode.KEYSPACES,
            region=Stack.of(self).region,
            redis_url=redis_url,
            cursor_secret_arn=self.cursor_secret.secret_arn,
            player_hash_secret_arn=self.player_hash_secret.secret_arn,
            player_tokens=self._player_token_parameters(),
        )
        self.functions: dict[str, lambda_.Function] = {}
        self.aliases: dict[str, lambda_.Alias] = {}
        for definition in ALL_FUNCTION_DEFINITIONS.values():
            self._add_function(
                definition,
                runtime=runtime,
                architecture=architecture,
                vpc=vpc,
                security_group=security_group,
                data=data,
                deployment=deployment,
            )
        self.builder = self.functions[ROLLUP_BUILDER_DEFINITION.name]
        # One run per part a minute (a rule takes five targets at most), told when it was scheduled: it returns
        # just before its part's next run. One that could not start is not retried: the next run folds its slots.
        parts = list(range(ROLLUP_PARTS))
        self.builder_schedules = [
            events.Rule(
                self,
                "RollupBuilderSchedule" + (str(number + 1) if number else ""),
                description="Starts one rollup builder per part every minute; each folds for most of the minute",
                schedule=events.Schedule.rate(Duration.minutes(ROLLUP_BUILDER_SCHEDULE_MINUTES)),
                targets=[
                    targets.LambdaFunction(
                        self.builder,
                        event=events.RuleTargetInput.from_object(
                            {"part": part, SCHEDULED_AT: events.EventField.time}
                        ),
                        retry_attempts=0,
                        max_event_age=Duration.minutes(ROLLUP_BUILDER_SCHEDULE_MINUTES),
                    )
                    for part in parts[first : first + RULE_TARGETS]
                ],
            )
            for number, first in enumerate(range(0, len(parts), RULE_TARGETS))
        ]

    def _hmac_key(
        self, construct_id: str, description: str, *, not_rotated: str, not_customer_managed: str
    ) -> secretsmanager.Secret:
        """A generated HMAC key in Secrets Manager, read once per environment by the functions granted it."""
        secret = secretsmanager.Secret(
            self,
            construct_id,
            description=description,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=CURSOR_SECRET_LENGTH, exclude_punctuation=True
            ),
        )
        Validations.of(secret).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-SMG4", reason=not_rotated)
        )
        skip_checkov(secret, "CKV_AWS_149", not_customer_managed)
        return secret

    def _player_token_parameters(self) -> dict[str, str]:
        """The studio login the authorizer trusts, given at deploy time (``cdk deploy --parameters``)."""
        stack = Stack.of(self)
        parameters = {
            "player_token_issuer": CfnParameter(
                stack,
                "PlayerTokenIssuer",
                description="The iss claim of the studio login's player tokens (e.g. https://login.example.com)",
                min_length=1,
            ),
            "player_token_audience": CfnParameter(
                stack,
                "PlayerTokenAudience",
                description="The aud claim the studio login puts in tokens for this service",
                min_length=1,
            ),
            "player_token_jwks_url": CfnParameter(
                stack,
                "PlayerTokenJwksUrl",
                description="HTTPS URL where the studio login publishes its signing keys (JWKS)",
                allowed_pattern=r"^https://\S+$",
                constraint_description="an https:// URL",
            ),
        }
        return {name: parameter.value_as_string for name, parameter in parameters.items()}

    def _add_function(
        self,
        definition: FunctionDefinition,
        *,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        data: KeyspacesData,
        deployment: Deployment,
    ) -> None:
        function = definition.function
        construct_id = function_logical_id(function)
        log_group = self._log_groups.log_group(self, f"{construct_id}Logs")
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {function.name} function",
            inline_policies={
                "Runtime": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="WriteOwnLogs",
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[log_group.log_group_arn],
                        ),
                        *(
                            [
                                iam.PolicyStatement(
                                    sid="AttachToVpc", actions=VPC_ACCESS_ACTIONS, resources=["*"]
                                )
                            ]
                            if definition.uses_data
                            else []
                        ),
                    ]
                )
            },
        )
        if definition.uses_data:
            data.grant(role, table_access(function))
        if function in CURSOR_SECRET_READERS:
            self.cursor_secret.grant_read(role)
        if function in PLAYER_HASH_SECRET_READERS:
            self.player_hash_secret.grant_read(role)
        handler = lambda_.Function(
            self,
            construct_id,
            description=function.description,
            runtime=runtime,
            architecture=architecture,
            code=lambda_.Code.from_asset(str(definition.code_dir), exclude=ASSET_EXCLUDES),
            handler=definition.handler,
            layers=[self.layer],
            memory_size=definition.memory_mb,
            timeout=Duration.seconds(definition.timeout_seconds),
            reserved_concurrent_executions=definition.reserved_concurrency,
            # EventBridge invokes a scheduled function asynchronously: without these, Lambda itself would retry
            # a failed run twice (1 and 2 minutes later) and keep a throttled one queued for up to 6 hours, so
            # late runs of a part would pile onto the next minutes' runs and take their reserved slots.
            retry_attempts=0 if definition.scheduled else None,
            max_event_age=Duration.minutes(ROLLUP_BUILDER_SCHEDULE_MINUTES) if definition.scheduled else None,
            environment=definition.environment(deployment),
            role=role,
            log_group=log_group,
            # Also grants xray:PutTraceSegments and xray:PutTelemetryRecords on "*": X-Ray has no
            # resource-level permissions for them, so AWS requires the wildcard.
            tracing=lambda_.Tracing.ACTIVE,
            # Imports (pydantic, Powertools, the Cassandra driver) dominate a cold start and are done once, at
            # publication; see docs/decisions.md for SnapStart against provisioned concurrency.
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if definition.snap_start else None,
            vpc=vpc if definition.uses_data else None,
            vpc_subnets=PRIVATE_SUBNETS if definition.uses_data else None,
            security_groups=[security_group] if definition.uses_data else None,
        )
        cfn_function = handler.node.default_child
        if not isinstance(cfn_function, lambda_.CfnFunction):
            raise TypeError(f"{handler.node.path} has no AWS::Lambda::Function resource")
        cfn_function.override_logical_id(construct_id)
        skip_checkov_checks(definition, cfn_function, role, definition.environment(deployment))
        if definition.snap_start:
            Validations.of(handler).acknowledge(
                Acknowledgment(
                    id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
                    reason="Each deployment publishes a version (current_version); API Gateway calls its alias.",
                )
            )
        acknowledgements = (
            [
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason=(
                        "Required by AWS: attaching to the VPC (EC2 Describe* actions have no resource-level "
                        f"permissions, and the ENIs do not exist before Lambda creates them) and {X_RAY_ACTIONS}."
                    ),
                ),
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{SYSTEM_KEYSPACES_ARN}]",
                    reason=(
                        "Required by AWS: a Keyspaces driver reads the system* keyspaces (system.local, "
                        "system.peers, ...) on every connection; no service data lives there. Every service "
                        "table is named individually."
                    ),
                ),
            ]
            if definition.uses_data
            # Outside the VPC, with no database: only X-Ray's actions need the wildcard.
            else [
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason=f"Required by AWS: {X_RAY_ACTIONS}.",
                )
            ]
        )
        Validations.of(role).acknowledge(*acknowledgements)
        self.functions[function.name] = handler
        if not definition.scheduled:
            self.aliases[function.name] = lambda_.Alias(
                self, f"{construct_id}Alias", alias_name=LAMBDA_ALIAS, version=handler.current_version
            )
