"""Every log group of the service (functions, API access, VPC flow logs): kept as long as LOG_RETENTION says,
encrypted with one customer-managed key that only CloudWatch Logs may use, for this account's log groups."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.constants import LOG_RETENTION
from infra_cdk.keys import service_key

# What CloudWatch Logs needs of a key that encrypts log groups (AWS's documented key policy statement).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


class LogGroups(Construct):
    """The key, and a factory of log groups; each log group stays in the construct of what writes to it."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Function logs carry player ids: with a key of its own, reading them also takes kms:Decrypt on it.
        self.key = service_key(
            self, "Key", description="Encrypts the log groups of the player session service"
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=LOGS_KEY_ACTIONS,
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )

    def log_group(self, scope: Construct, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(
            scope,
            construct_id,
            retention=logs.RetentionDays[LOG_RETENTION],
            encryption_key=self.key,
            # Logs explain the service; the data they describe is retained in Keyspaces.
            removal_policy=RemovalPolicy.DESTROY,
        )
