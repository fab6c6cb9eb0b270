"""Private subnets only; the functions reach Keyspaces and Secrets Manager through interface endpoints and the
serverless Valkey cache over TLS, each on its one port, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import render


def group_id(synthesized: Synthesized, security_group) -> str:
    return synthesized.stack.resolve(security_group.security_group_id)["Fn::GetAtt"][0]


def rules(synthesized: Synthesized, resource_type: str) -> list[dict[str, Any]]:
    return [rule["Properties"] for rule in synthesized.resources(resource_type).values()]


def ingress_of(synthesized: Synthesized, group: str) -> list[tuple[str, int, int]]:
    """(source group, from port, to port) of every ingress rule of a security group, inline ones included."""
    inline = synthesized.resources("AWS::EC2::SecurityGroup")[group]["Properties"].get(
        "SecurityGroupIngress", []
    )
    assert inline == [], "ingress only from named security groups"
    return [
        (rule["SourceSecurityGroupId"]["Fn::GetAtt"][0], rule["FromPort"], rule["ToPort"])
        for rule in rules(synthesized, "AWS::EC2::SecurityGroupIngress")
        if rule["GroupId"]["Fn::GetAtt"][0] == group
    ]


def test_vpc_has_private_subnets_in_two_zones_and_no_route_to_the_internet(synthesized: Synthesized) -> None:
    # When
    subnets = synthesized.resources("AWS::EC2::Subnet")

    # Then: the deploying region's first two zones
    assert sorted(s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values()) == [0, 1]
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    for absent in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::Route"):
        assert synthesized.resources(absent) == {}


def test_rejected_traffic_is_logged(synthesized: Synthesized) -> None:
    # When
    (flow_log,) = synthesized.resources("AWS::EC2::FlowLog").values()

    # Then
    assert flow_log["Properties"]["TrafficType"] == "REJECT"
    assert flow_log["Properties"]["LogDestinationType"] == "cloud-watch-logs"


@pytest.mark.parametrize(("service", "port"), [("cassandra", 9142), ("secretsmanager", 443)])
def test_functions_reach_the_service_through_an_interface_endpoint_on_its_port_only(
    synthesized: Synthesized, service: str, port: int
) -> None:
    # Given
    functions_group = group_id(synthesized, synthesized.stack.network.functions_security_group)

    # When
    (endpoint,) = [
        e["Properties"]
        for e in synthesized.resources("AWS::EC2::VPCEndpoint").values()
        if render(e["Properties"]["ServiceName"]) == f"com.amazonaws.<AWS::Region>.{service}"
    ]

    # Then
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["PrivateDnsEnabled"] is True
    (endpoint_group,) = [ref["Fn::GetAtt"][0] for ref in endpoint["SecurityGroupIds"]]
    assert ingress_of(synthesized, endpoint_group) == [(functions_group, port, port)]


def test_functions_may_connect_only_to_the_endpoints_and_the_cache(synthesized: Synthesized) -> None:
    # Given
    network = synthesized.stack.network
    functions_group = group_id(synthesized, network.functions_security_group)
    destinations = {
        group_id(synthesized, network.keyspaces_endpoint.connections.security_groups[0]): 9142,
        group_id(synthesized, network.secrets_manager_endpoint.connections.security_groups[0]): 443,
        group_id(synthesized, synthesized.stack.cache.security_group): 6379,
    }

    # When
    egress = [
        rule
        for rule in rules(synthesized, "AWS::EC2::SecurityGroupEgress")
        if rule["GroupId"]["Fn::GetAtt"][0] == functions_group
    ]
    group = synthesized.resources("AWS::EC2::SecurityGroup")[functions_group]["Properties"]

    # Then: no allow-all egress rule, one rule per destination
    assert {r["DestinationSecurityGroupId"]["Fn::GetAtt"][0]: r["FromPort"] for r in egress} == destinations
    assert all(r["FromPort"] == r["ToPort"] and r["IpProtocol"] == "tcp" for r in egress)
    assert "SecurityGroupEgress" not in group


def test_cache_is_serverless_valkey_in_the_private_subnets_reachable_only_by_the_functions(
    synthesized: Synthesized,
) -> None:
    # Given
    functions_group = group_id(synthesized, synthesized.stack.network.functions_security_group)
    cache_group = group_id(synthesized, synthesized.stack.cache.security_group)

    # When
    (cache,) = synthesized.resources("AWS::ElastiCache::ServerlessCache").values()
    properties = cache["Properties"]

    # Then
    assert properties["Engine"] == "valkey"
    assert properties["MajorEngineVersion"] == "8"
    assert properties["ServerlessCacheName"] == "player-sessions"
    assert sorted(ref["Ref"] for ref in properties["SubnetIds"]) == sorted(
        synthesized.resources("AWS::EC2::Subnet")
    )
    assert properties["SecurityGroupIds"] == [{"Fn::GetAtt": [cache_group, "GroupId"]}]
    assert properties["CacheUsageLimits"] == {
        "DataStorage": {"Maximum": 5, "Unit": "GB"},
        "ECPUPerSecond": {"Maximum": 100_000},
    }
    assert ingress_of(synthesized, cache_group) == [(functions_group, 6379, 6379)]
