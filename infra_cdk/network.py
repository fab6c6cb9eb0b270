"""The VPC the functions and the cache live in: private subnets only, and the endpoints the functions call.

No NAT gateway and no internet route: the functions reach exactly three things, each through its own path.
- Amazon Keyspaces (TLS on 9142) through an interface endpoint (``com.amazonaws.<region>.cassandra``);
- Secrets Manager (the cursor key, read once per environment) through an interface endpoint;
- the cache, inside the VPC.
Not needed: STS (Lambda hands the role's credentials to the function itself, as environment variables or, with
SnapStart, from the runtime's local container-credentials endpoint; SigV4 for Keyspaces is signed locally from
them), CloudWatch Logs and X-Ray (the runtime ships logs, EMF metrics and trace segments through Lambda's own
agents, outside the function's network interface).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra_cdk.acknowledgements import acknowledge_cfn_guard, skip_checkov
from infra_cdk.constants import VPC_MAX_AZS, VPC_SUBNET_CIDR_MASK
from infra_cdk.log_groups import LogGroups

# The CDK's own Lambda function (one per stack) behind ``restrict_default_security_group``.
DEFAULT_SECURITY_GROUP_PROVIDER = "Custom::VpcRestrictDefaultSGCustomResourceProvider"

PRIVATE_SUBNETS = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, log_groups: LogGroups) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=VPC_MAX_AZS,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="private",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=VPC_SUBNET_CIDR_MASK,
                )
            ],
            # Nothing uses the default security group; with its rules removed it cannot be used by mistake.
            restrict_default_security_group=True,
        )
        self._acknowledge_default_security_group_handler()
        flow_logs = log_groups.log_group(self, "FlowLogs")
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.functions_security_group = ec2.SecurityGroup(
            self,
            "FunctionsSecurityGroup",
            vpc=self.vpc,
            description="The Lambda functions: outbound to the endpoints and the cache only",
            allow_all_outbound=False,
        )
        self.keyspaces_endpoint = self._endpoint("Keyspaces", ec2.InterfaceVpcEndpointAwsService.KEYSPACES)
        self.secrets_manager_endpoint = self._endpoint(
            "SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER
        )

    def _endpoint(self, name: str, service: ec2.InterfaceVpcEndpointAwsService) -> ec2.InterfaceVpcEndpoint:
        security_group = ec2.SecurityGroup(
            self,
            f"{name}EndpointSecurityGroup",
            vpc=self.vpc,
            description=f"{name} interface endpoint: traffic of the functions on the service port only",
            allow_all_outbound=False,
        )
        endpoint = self.vpc.add_interface_endpoint(
            f"{name}Endpoint",
            service=service,
            subnets=PRIVATE_SUBNETS,
            private_dns_enabled=True,
            security_groups=[security_group],
            # Not open to the whole VPC: only the functions' security group is let in, below.
            open=False,
        )
        endpoint.connections.allow_default_port_from(
            self.functions_security_group, f"The functions call {name}"
        )
        return endpoint

    def _acknowledge_default_security_group_handler(self) -> None:
        """The handler runs only while CloudFormation deploys the VPC: the checks on serving functions do not fit."""
        handler = Stack.of(self).node.find_child(DEFAULT_SECURITY_GROUP_PROVIDER).node.find_child("Handler")
        outside_the_vpc = (
            "The CDK's deployment-time handler that strips the default security group's rules: CloudFormation "
            "calls it only when the VPC is created or updated, it touches no service data, and inside these "
            "isolated subnets (no NAT) it could not reach the EC2 API without one more interface endpoint."
        )
        acknowledge_cfn_guard(handler, "lambda_inside_vpc_check", outside_the_vpc)
        skip_checkov(handler, "CKV_AWS_117", outside_the_vpc)
        skip_checkov(
            handler,
            "CKV_AWS_115",
            "Runs once per deployment that changes the VPC, on CloudFormation's call: there is no load to cap.",
        )
        skip_checkov(
            handler,
            "CKV_AWS_116",
            "A failed call is reported to CloudFormation, which fails and rolls back the deployment; a "
            "dead-letter queue would only hold a copy of a request nobody replays.",
        )
