"""Settings are read once from the environment and fail fast with the variable's name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from player_sessions.errors import ConfigurationError
from player_sessions.settings import DatabaseMode, Settings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings_cache():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_describe_the_local_stack(monkeypatch):
    # Given no PLAYER_SESSIONS_ variables
    for name in list(__import__("os").environ):
        if name.startswith("PLAYER_SESSIONS_"):
            monkeypatch.delenv(name)
    # When settings are read
    settings = get_settings()
    # Then they point at the local Cassandra and Redis with the spec's limits
    assert settings.database_mode is DatabaseMode.LOCAL
    assert settings.cassandra_contact_points == ("127.0.0.1",)
    assert settings.retention_seconds == 31_536_000
    assert settings.max_batch_events == 10
    assert settings.clock_skew_seconds == 300
    assert settings.player_token_max_lifetime_seconds == 86_400
    # a session is open for at most S = 12 hours (issue 25: "a setting, default 12")
    assert settings.open_session_hours == 12
    assert settings.open_session == timedelta(hours=12)


def test_environment_overrides_are_parsed(monkeypatch):
    # Given a Keyspaces environment with two contact points and a shorter retention
    monkeypatch.setenv("PLAYER_SESSIONS_DATABASE_MODE", "keyspaces")
    monkeypatch.setenv("PLAYER_SESSIONS_CASSANDRA_CONTACT_POINTS", "10.0.0.1, 10.0.0.2")
    monkeypatch.setenv("PLAYER_SESSIONS_RETENTION_DAYS", "30")
    monkeypatch.setenv("PLAYER_SESSIONS_AWS_REGION", "eu-west-1")
    # When settings are read
    settings = get_settings()
    # Then each value is typed
    assert settings.database_mode is DatabaseMode.KEYSPACES
    assert settings.cassandra_contact_points == ("10.0.0.1", "10.0.0.2")
    assert settings.retention.days == 30
    assert settings.aws_region == "eu-west-1"


def test_invalid_value_names_the_variable(monkeypatch):
    # Given a batch limit of zero
    monkeypatch.setenv("PLAYER_SESSIONS_MAX_BATCH_EVENTS", "0")
    # When settings are read / Then the error names the variable and the rule
    with pytest.raises(
        ConfigurationError, match=r"PLAYER_SESSIONS_MAX_BATCH_EVENTS.*greater than or equal to 1"
    ):
        get_settings()


@pytest.mark.parametrize("seconds", ["59", "604801"])
def test_a_player_token_lifetime_outside_a_minute_to_a_week_names_the_variable(monkeypatch, seconds):
    monkeypatch.setenv("PLAYER_SESSIONS_PLAYER_TOKEN_MAX_LIFETIME_SECONDS", seconds)
    with pytest.raises(ConfigurationError, match=r"PLAYER_SESSIONS_PLAYER_TOKEN_MAX_LIFETIME_SECONDS"):
        get_settings()


def test_settings_are_parsed_once_per_process():
    # Given settings were read once / When read again / Then it is the same object
    assert get_settings() is get_settings()


def test_keyspace_name_must_be_a_plain_identifier():
    # Given a keyspace name carrying CQL (a keyspace name ends up in DDL)
    # When settings are built with it / Then it is refused, naming the keyspace
    with pytest.raises(ValueError, match="keyspace"):
        Settings(keyspace="ks; DROP KEYSPACE x")
