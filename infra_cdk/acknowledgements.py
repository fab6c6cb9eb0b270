"""A template check's finding acknowledged on the one resource it is about, with the reason.

cdk-nag and cfn-guard run inside synthesis, through the CDK's validation framework: an acknowledgement is
``Validations.acknowledge`` on the construct. checkov reads the synthesized template: a skip is the resource's
``Metadata.checkov.skip`` entry, which its report shows with the comment.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct

CFN_GUARD_PLUGIN = "cdk-validator-cfnguard"
"""The cfn-guard plugin's name, the prefix of its acknowledgement ids (``<plugin>::<rule name>``)."""
CHECKOV_METADATA_KEY = "checkov"


def acknowledge_cfn_guard(construct: IConstruct, rule: str, reason: str) -> None:
    """``rule``: the guard rule's name (``lambda_inside_vpc_check``), as the validation report spells it."""
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{CFN_GUARD_PLUGIN}::{rule}", reason=reason))


def skip_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skips one checkov check on ``construct``'s CloudFormation resource (an L1, or an L2's default child)."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} is not and has no CloudFormation resource")
    skips = (resource.get_metadata(CHECKOV_METADATA_KEY) or {}).get("skip", [])
    resource.add_metadata(CHECKOV_METADATA_KEY, {"skip": [*skips, {"id": check_id, "comment": reason}]})
