"""Deployed, the cursor signing key comes from Secrets Manager (moto stands in for it)."""

from __future__ import annotations

import boto3
from moto import mock_aws

from player_sessions.bootstrap import with_deployed_secrets
from player_sessions.settings import Settings


def test_cursor_key_is_read_from_secrets_manager_when_an_arn_is_set(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        # Given a secret in Secrets Manager
        arn = boto3.client("secretsmanager").create_secret(Name="cursor-key", SecretString="s3cr3t-key")[
            "ARN"
        ]
        # When settings name it
        settings = with_deployed_secrets(Settings(cursor_secret_arn=arn))
    # Then the cursor key is the secret's value
    assert settings.cursor_signing_key.get_secret_value() == "s3cr3t-key"


def test_after_a_rotation_the_previous_key_is_read_too_and_cursors_it_signed_still_decode(monkeypatch):
    from datetime import UTC, datetime
    from uuid import uuid4

    from player_sessions.domain.country_starts.cursor import CountryCursor, decode_cursor, encode_cursor

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    cursor = CountryCursor("FI", 3, moment, moment, moment, uuid4())
    with mock_aws():
        # Given a cursor signed with the secret's first key, then the secret rotated
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name="cursor-key", SecretString="first-key")["ARN"]
        old = encode_cursor(cursor, with_deployed_secrets(Settings(cursor_secret_arn=arn)).cursor_keys()[0])
        client.put_secret_value(SecretId=arn, SecretString="second-key")
        # When an environment starts after the rotation
        settings = with_deployed_secrets(Settings(cursor_secret_arn=arn))
    # Then it signs with the new key and still decodes the cursor the old one signed
    assert settings.cursor_keys() == (b"second-key", b"first-key")
    assert decode_cursor(old, settings.cursor_keys()) == cursor
    assert encode_cursor(cursor, settings.cursor_keys()[0]) != old
    # and a key that is neither is refused
    assert decode_cursor(encode_cursor(cursor, b"second-key"), (b"second-key",)) == cursor


def test_local_settings_keep_their_key_and_call_nothing():
    # Given local settings, which name no secret
    settings = Settings()
    # When the deployed secrets are applied
    applied = with_deployed_secrets(settings)
    # Then the settings are returned as they were (and no AWS API is called: sockets are blocked)
    assert applied is settings


def test_after_a_snapstart_restore_the_next_request_builds_fresh_connections():
    from player_sessions import bootstrap as services_module

    # Given services built before the snapshot
    before = services_module.build_services(Settings())
    with services_module.use_services(before):
        # When the runtime restores the environment
        services_module._forget_connections_after_restore()
        # Then the next request does not get the snapshot's services (and their dead sockets)
        assert services_module._services is None


def test_keyspaces_mode_without_the_cursor_secret_refuses_to_sign():
    import pytest

    from player_sessions.errors import ConfigurationError
    from player_sessions.settings import DatabaseMode

    # Given Keyspaces settings that name no cursor secret (the public development key is the default)
    settings = Settings(database_mode=DatabaseMode.KEYSPACES)
    # When the cursor key is asked for / Then it is refused, naming the missing setting
    with pytest.raises(ConfigurationError, match="PLAYER_SESSIONS_CURSOR_SECRET_ARN"):
        settings.cursor_keys()


def test_the_country_function_fails_its_cold_start_in_keyspaces_mode_without_the_secret(monkeypatch):
    import importlib
    import sys

    import pytest

    from player_sessions.errors import ConfigurationError
    from player_sessions.settings import get_settings

    # Given a Keyspaces environment without the cursor secret
    monkeypatch.setenv("PLAYER_SESSIONS_DATABASE_MODE", "keyspaces")
    monkeypatch.delenv("PLAYER_SESSIONS_CURSOR_SECRET_ARN", raising=False)
    get_settings.cache_clear()
    monkeypatch.delitem(sys.modules, "functions.country_starts.handler", raising=False)
    try:
        # When the function's module is imported (its init) / Then it fails
        with pytest.raises(ConfigurationError, match="CURSOR_SECRET_ARN"):
            importlib.import_module("functions.country_starts.handler")
    finally:
        get_settings.cache_clear()


def test_keyspaces_mode_takes_no_password():
    import pytest

    from player_sessions.settings import DatabaseMode

    # When Keyspaces settings name a Cassandra username / Then they are refused (SigV4 only)
    with pytest.raises(ValueError, match="SigV4"):
        Settings(database_mode=DatabaseMode.KEYSPACES, cassandra_username="someone")
