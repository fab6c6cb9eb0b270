"""The service's settings, read once from the environment and validated.

Every tunable fact (retention, batch limit, clock-skew allowance, where Cassandra and Redis are) lives here;
no other module reads os.environ. Variables are prefixed with ``PLAYER_SESSIONS_``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from player_sessions.errors import ConfigurationError
from player_sessions.time_buckets import Partition


class DatabaseMode(StrEnum):
    LOCAL = "local"
    """A plain Apache Cassandra (local development and tests): no TLS, no authentication."""
    KEYSPACES = "keyspaces"
    """Amazon Keyspaces: TLS on 9142, SigV4 with the function's IAM role."""


class ReplicationStrategy(StrEnum):
    """How a local or self-run Cassandra replicates the keyspace (Amazon Keyspaces manages its own)."""

    SIMPLE = "SimpleStrategy"
    """One node: its one replica (the default of `make serve` and most tests)."""
    NETWORK_TOPOLOGY = "NetworkTopologyStrategy"
    """A cluster: ``replication_factor`` replicas in ``cassandra_datacenter``, as production Cassandra is run."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLAYER_SESSIONS_", frozen=True, extra="ignore")

    database_mode: DatabaseMode = DatabaseMode.LOCAL
    cassandra_contact_points: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1",)
    """Comma-separated host names."""
    cassandra_port: int = Field(default=9042, ge=1, le=65535)
    cassandra_datacenter: str = Field(default="datacenter1", pattern=r"^[A-Za-z0-9_-]{1,48}$")
    """The datacenter the driver sends requests to (LOCAL_QUORUM is counted there) and the keyspace's replicas
    are placed in. Keyspaces mode uses the region instead."""
    replication_strategy: ReplicationStrategy = ReplicationStrategy.SIMPLE
    replication_factor: int = Field(default=1, ge=1, le=5)
    """Replicas of every row. With three, LOCAL_QUORUM is two: one replica can be lost without an error."""
    keyspace: str = Field(default="player_sessions", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    aws_region: str = "us-east-1"
    keyspaces_ca_file: str | None = None
    """PEM bundle trusted for Keyspaces' TLS; default: the system trust store, which holds Amazon's roots."""
    cassandra_username: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,47}$")
    """Local mode: the Cassandra role to log in as (each function has its own, holding its deployed grants).
    Keyspaces mode takes none: the function's IAM role signs in with SigV4."""
    cassandra_password_file: Path | None = None
    """Local mode: the file holding that role's password (under the git-ignored .local/)."""
    cassandra_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    cassandra_request_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = Field(default=0.1, gt=0, le=5)
    cache_enabled: bool = True

    retention_days: int = Field(default=365, ge=1, le=3650)
    max_batch_events: int = Field(default=10, ge=1, le=100)
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=6 * 1024 * 1024)
    clock_skew_seconds: int = Field(default=300, ge=0, le=86_400)
    start_shards: int = Field(default=4, ge=1, le=64)
    """How many partitions share one hour of session starts (each Keyspaces partition takes 1,000 writes/s)."""
    rollup_parts: int = Field(default=4, ge=1, le=64)
    """How many builders fold the arrival log in parallel, each its own share of the shards (at most
    ``start_shards``); deployed, the schedule invokes one builder per part."""

    open_session_hours: int = Field(default=12, ge=1, le=168)
    """A session started longer ago than this and not ended counts as abandoned: it is no longer online, and a
    session that lasted longer is reported apart from the session lengths (domain.live_ops)."""

    tail_arrivals_read_at_most: int = Field(default=20_000, ge=100, le=1_000_000)
    """The most unfolded arrivals one count or page reads; past it the answer says it is partial
    (domain.country_starts.window)."""

    cursor_signing_key: SecretStr = SecretStr("local-development-cursor-key")
    """HMAC key of the country listing's page cursors (local default); deployed, see cursor_secret_arn."""
    cursor_previous_signing_key: SecretStr | None = None
    """The key cursors were signed with before the last rotation: cursors it signed still decode until they
    expire with their window. Deployed, the secret's AWSPREVIOUS version."""
    cursor_secret_arn: str | None = None
    """Secrets Manager secret holding the cursor key; read once per environment when set."""

    player_hash_key: SecretStr = SecretStr("local-development-player-hash-key")
    """HMAC key of the player id's keyed hash (local default); deployed, see player_hash_secret_arn. It names
    a player in the index of their rows and in erasure records without storing the id, so it is never rotated:
    every hash stored so far would stop matching."""
    player_hash_secret_arn: str | None = None
    """Secrets Manager secret holding the player hash key; read once per environment when set."""

    api_key: str | None = None
    """When set, the local gateway requires it in ``x-api-key`` (API Gateway does this when deployed)."""

    player_token_issuer: str | None = None
    """The ``iss`` of the studio login's player tokens (JWT); the authorizer refuses every token while unset."""
    player_token_audience: str | None = None
    """The ``aud`` those tokens carry for this service."""
    player_token_jwks_url: str | None = None
    """Where the login publishes its signing keys (a JWKS document); locally a ``file://`` URL."""
    player_token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    """Clock difference allowed with the issuer on ``exp``, ``nbf`` and ``iat``."""
    player_token_max_lifetime_seconds: int = Field(default=86_400, ge=60, le=604_800)
    """The longest a player token may be valid (``exp`` minus ``iat``): a token the login issued for longer is
    refused, so a leaked token is worth at most this long whatever the login's own setting."""

    @field_validator("cassandra_contact_points", mode="before")
    @classmethod
    def split_contact_points(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(point.strip() for point in value.split(",") if point.strip())
        return value

    @model_validator(mode="after")
    def check_contact_points(self) -> Settings:
        if not self.cassandra_contact_points:
            raise ValueError("cassandra_contact_points must name at least one host")
        return self

    @model_validator(mode="after")
    def check_parts(self) -> Settings:
        if self.rollup_parts > self.start_shards:
            raise ValueError("rollup_parts must not exceed start_shards (a part folds whole shards)")
        return self

    @property
    def partition(self) -> Partition:
        return Partition(self.rollup_parts, self.start_shards)

    @model_validator(mode="after")
    def check_no_password_on_keyspaces(self) -> Settings:
        if self.database_mode is DatabaseMode.KEYSPACES and (
            self.cassandra_username is not None or self.cassandra_password_file is not None
        ):
            raise ValueError(
                "Keyspaces mode signs in with the function's IAM role (SigV4): no username or password"
            )
        return self

    def cursor_keys(self) -> tuple[bytes, ...]:
        """The keys of the country listing's page cursors: the one that signs, then the previous one if any
        (cursors it signed still decode). Deployed they come from Secrets Manager (``cursor_secret_arn``):
        Keyspaces mode without that secret refuses, rather than sign with the public development key."""
        if self.database_mode is DatabaseMode.KEYSPACES and self.cursor_secret_arn is None:
            raise ConfigurationError(
                "PLAYER_SESSIONS_CURSOR_SECRET_ARN is not set: Keyspaces mode signs cursors only with the "
                "deployed secret, never with the development key"
            )
        keys = (self.cursor_signing_key, self.cursor_previous_signing_key)
        return tuple(key.get_secret_value().encode() for key in keys if key is not None)

    def player_hash(self, player_id: str) -> bytes:
        """The player id's keyed hash (HMAC-SHA256): what the index of a player's rows and the erasure records
        store instead of the id. Keyspaces mode without the deployed secret refuses, rather than hash with the
        public development key (anyone could then test a guessed id against an erasure record)."""
        if self.database_mode is DatabaseMode.KEYSPACES and self.player_hash_secret_arn is None:
            raise ConfigurationError(
                "PLAYER_SESSIONS_PLAYER_HASH_SECRET_ARN is not set: Keyspaces mode hashes player ids only with "
                "the deployed secret, never with the development key"
            )
        key = self.player_hash_key.get_secret_value().encode()
        return hmac.new(key, player_id.encode(), hashlib.sha256).digest()

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_seconds)

    @property
    def open_session(self) -> timedelta:
        return timedelta(hours=self.open_session_hours)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use; a bad environment fails with every problem listed."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"PLAYER_SESSIONS_{'_'.join(str(part) for part in issue['loc']).upper()}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from error
