"""The service's customer-managed KMS keys: rotated yearly, and no grants but those AWS services make."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra_cdk.data import KEEP_ONCE_CREATED


def service_key(scope: Construct, construct_id: str, *, description: str) -> kms.Key:
    """A key whose policy also denies kms:CreateGrant to anyone but an AWS service acting for a resource.

    Grants are a second way to hand out the key that the key policy does not show; nothing in this service
    creates one (CloudWatch, SNS and CloudWatch Logs call KMS directly). Control Tower's CT.KMS.PR.3 asks for
    exactly this statement.
    """
    key = kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=KEEP_ONCE_CREATED,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="GrantsOnlyForAwsResources",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={
                "BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}
            },
        )
    )
    return key
