"""The stack: composes one construct per concern, and holds nothing of its own but the outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra_cdk.api import RestApi
from infra_cdk.cache import ServerlessCache
from infra_cdk.constants import ALARM_EMAIL_CONTEXT_KEY, STACK_DESCRIPTION
from infra_cdk.data import KeyspacesData
from infra_cdk.functions import LambdaFunctions
from infra_cdk.log_groups import LogGroups
from infra_cdk.monitoring import Monitoring
from infra_cdk.network import Network


class PlayerSessionsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        # Environment-agnostic: account and region are the deployer's, so synthesis needs no credentials and
        # makes no lookups.
        super().__init__(scope, construct_id, description=STACK_DESCRIPTION)
        self.data = KeyspacesData(self, "Data")
        self.log_groups = LogGroups(self, "Logs")
        self.network = Network(self, "Network", log_groups=self.log_groups)
        self.cache = ServerlessCache(
            self, "Cache", vpc=self.network.vpc, clients=self.network.functions_security_group
        )
        self.functions = LambdaFunctions(
            self,
            "Functions",
            vpc=self.network.vpc,
            security_group=self.network.functions_security_group,
            data=self.data,
            redis_url=self.cache.redis_url,
            log_groups=self.log_groups,
        )
        self.api = RestApi(self, "Api", targets=self.functions.aliases, log_groups=self.log_groups)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=self.functions.functions,
            alarm_email=self.node.try_get_context(ALARM_EMAIL_CONTEXT_KEY),
            access_logs=self.api.access_logs,
        )
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="Base URL of the API (the stage)")
        plans = self.api.usage_plans
        for game in plans.games:
            CfnOutput(
                self,
                f"ApiKeyId{game.suffix}",
                value=game.key.key_id,
                description=f"Id of the {game.name} game's API key (public: it ships in the game's clients); its "
                "value: aws apigateway get-api-key --include-value",
            )
        CfnOutput(
            self,
            "StudioApiKeyId",
            value=plans.studio.key.key_id,
            description="Id of the API key of the studio's servers, dashboards and administration",
        )
        for caller, policy in self.api.caller_policies.items():
            CfnOutput(
                self,
                f"{caller.value.capitalize()}AccessPolicyArn",
                value=policy.managed_policy_arn,
                description=f"Attach to the roles that call the {caller.value} routes (SigV4)",
            )
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.alarm_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
