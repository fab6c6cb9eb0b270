"""The read cache: ElastiCache Serverless for Valkey, reachable only from the functions, TLS only."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from constructs import Construct

from infra_cdk.constants import (
    CACHE_ENGINE,
    CACHE_MAJOR_VERSION,
    CACHE_MAX_DATA_STORAGE_GB,
    CACHE_MAX_ECPU_PER_SECOND,
    CACHE_NAME,
    CACHE_PORT,
)
from infra_cdk.network import PRIVATE_SUBNETS


class ServerlessCache(Construct):
    """Serverless: no nodes to size or patch, multi-AZ by construction, encrypted in transit and at rest.

    Serverless caches accept TLS connections only, hence ``rediss://``. Access is by network: only the
    functions' security group may connect (the service caches derived, re-computable results, no secrets).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, clients: ec2.ISecurityGroup
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="The serverless cache: connections of the functions on the cache port only",
            allow_all_outbound=False,
        )
        self.security_group.connections.allow_from(
            clients, ec2.Port.tcp(CACHE_PORT), "The functions use the cache"
        )
        self.cache = elasticache.CfnServerlessCache(
            self,
            "Cache",
            serverless_cache_name=CACHE_NAME,
            engine=CACHE_ENGINE,
            major_engine_version=CACHE_MAJOR_VERSION,
            description="Read cache of the player session service",
            subnet_ids=vpc.select_subnets(subnet_type=PRIVATE_SUBNETS.subnet_type).subnet_ids,
            security_group_ids=[self.security_group.security_group_id],
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                    maximum=CACHE_MAX_DATA_STORAGE_GB, unit="GB"
                ),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(
                    maximum=CACHE_MAX_ECPU_PER_SECOND
                ),
            ),
        )

    @property
    def redis_url(self) -> str:
        """PLAYER_SESSIONS_REDIS_URL: TLS (``rediss``), database 0 (the only one serverless has)."""
        return f"rediss://{self.cache.attr_endpoint_address}:{self.cache.attr_endpoint_port}/0"
