"""The Keyspaces connection path, checked without any call to AWS: moto stands in for STS."""

from __future__ import annotations

import ssl

import boto3
import pytest
from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from moto import mock_aws

from player_sessions.cassandra_cluster import BULK_PROFILE, build_cluster, keyspaces_endpoint, named_rows
from player_sessions.settings import DatabaseMode, Settings


@pytest.fixture
def keyspaces_settings() -> Settings:
    return Settings(database_mode=DatabaseMode.KEYSPACES, aws_region="eu-west-1")


@pytest.fixture
def role_session(monkeypatch):
    """A boto3 session holding temporary credentials from an assumed role, as a Lambda function has."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        credentials = boto3.client("sts", region_name="eu-west-1").assume_role(
            RoleArn="arn:aws:iam::123456789012:role/ingest-events", RoleSessionName="lambda"
        )["Credentials"]
        yield boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name="eu-west-1",
        )


def test_keyspaces_cluster_uses_tls_on_9142_with_protocol_v4(keyspaces_settings, role_session):
    # When the cluster is built for Keyspaces
    cluster = build_cluster(keyspaces_settings, role_session)
    # Then it targets the regional endpoint on 9142, native protocol v4
    assert keyspaces_endpoint("eu-west-1") == "cassandra.eu-west-1.amazonaws.com"
    assert [(point.address, point.port) for point in cluster.contact_points] == [
        ("cassandra.eu-west-1.amazonaws.com", 9142)
    ]
    assert cluster.port == 9142
    assert cluster.protocol_version == ProtocolVersion.V4
    # And TLS verifies the certificate and the host name
    assert cluster.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert cluster.ssl_context.check_hostname is True
    assert cluster.ssl_context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert cluster.ssl_options == {"server_hostname": "cassandra.eu-west-1.amazonaws.com"}


def test_keyspaces_requests_are_dc_aware_for_the_region_at_local_quorum(keyspaces_settings, role_session):
    # When the cluster is built for Keyspaces in eu-west-1
    cluster = build_cluster(keyspaces_settings, role_session)
    # Then its default profile routes token-aware to the region's data center, at LOCAL_QUORUM
    profile = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
    assert isinstance(profile.load_balancing_policy, TokenAwarePolicy)
    child = profile.load_balancing_policy._child_policy
    assert isinstance(child, DCAwareRoundRobinPolicy)
    assert child.local_dc == "eu-west-1"
    assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM


def test_sigv4_answer_is_signed_with_the_roles_temporary_credentials(keyspaces_settings, role_session):
    # Given the authenticator Keyspaces' SigV4 handshake uses
    cluster = build_cluster(keyspaces_settings, role_session)
    authenticator = cluster.auth_provider.new_authenticator("cassandra.eu-west-1.amazonaws.com")
    assert authenticator.initial_response() == b"SigV4\x00\x00"
    # When the server's challenge arrives with a nonce
    answer = authenticator.evaluate_challenge(b"nonce=" + b"0123456789abcdef0123456789abcdef")
    # Then the answer is signed with the assumed role's key and carries its session token
    credentials = role_session.get_credentials()
    fields = dict(part.split("=", 1) for part in answer.split(","))
    assert fields["access_key"] == credentials.access_key
    assert fields["session_token"] == credentials.token
    assert len(fields["signature"]) == 64 and int(fields["signature"], 16) >= 0
    assert "password" not in answer


# The driver's Cluster() resolves host strings given as contact points when it is built (getaddrinfo, in
# cassandra.util._resolve_contact_points_to_string_map), and local mode hands it "127.0.0.1": a numeric address,
# so no lookup leaves the machine, and nothing connects. Connections stay limited to that address.
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_local_mode_has_no_tls_and_no_credentials():
    # When the cluster is built for the local Cassandra
    cluster = build_cluster(Settings(cassandra_contact_points="127.0.0.1", cassandra_port=9042))
    # Then it connects in plain text, without credentials, on the configured port, native protocol v4
    assert cluster.ssl_context is None
    assert cluster.auth_provider is None
    assert cluster.port == 9042
    assert cluster.protocol_version == ProtocolVersion.V4


def test_rows_are_named_tuples_whose_type_is_made_once_per_column_list(keyspaces_settings, role_session):
    # Given the profiles every request runs under
    cluster = build_cluster(keyspaces_settings, role_session)
    profiles = cluster.profile_manager.profiles
    assert {profiles[name].row_factory for name in (EXEC_PROFILE_DEFAULT, BULK_PROFILE)} == {named_rows}

    # When two pages of the same statement are decoded, and one with a column that is no identifier
    first = named_rows(["slot", "country"], [(1, "US"), (2, "DE")])
    second = named_rows(["slot", "country"], [(3, "FR")])
    counted = named_rows(["count(*)"], [(7,)])

    # Then rows read by attribute and compare as tuples; both pages share one row type; the odd name is
    # cleaned as the driver's own factory cleans it
    assert [(row.slot, row.country) for row in first] == [(1, "US"), (2, "DE")]
    assert first == [(1, "US"), (2, "DE")]
    assert type(second[0]) is type(first[0])
    assert counted[0].count == 7
