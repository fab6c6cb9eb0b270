"""The composition root: builds the real collaborators once per Lambda environment and hands them to the
handlers.

Nothing connects at import: the first request opens Cassandra and Redis, and later requests reuse them.
Routes declare what they need as a parameter, ``services: ServicesDependency`` (Powertools' ``Depends``): the
local in-process gateway gives each function its own through the resolver's ``dependency_overrides``; tests
may also swap the process-wide ones with ``use_services``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.clock import Clock, SystemClock
from player_sessions.domain.cache_debt import CacheDebtCollector
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import CompactionTracker, FamilyBuilders, RollupBuilder
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.live_ops import LiveOps
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.cache_debt import CassandraCacheDebt
from player_sessions.repositories.cache_protocol import CACHE_FORMAT_VERSION, NoCache, ReadCache
from player_sessions.repositories.cassandra_player_data import CassandraPlayerDataStore
from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
from player_sessions.repositories.cassandra_store import CassandraSessionStore
from player_sessions.repositories.protocols import CacheDebtStore, PlayerDataStore, RollupStore, SessionStore
from player_sessions.schema import COMPLETIONS, LENGTHS
from player_sessions.settings import Settings, get_settings


@dataclass
class Services:
    settings: Settings
    clock: Clock
    sessions: SessionStore
    """Sessions, their starts and completions: ingest, a player's history, the health check."""
    starts: RollupStore
    """The starts by country: readers see its StartsStore side, the rollup builder folds through the rest."""
    cache: ReadCache
    redis: RedisConnection | None
    cassandra: CassandraConnection | None = None
    player_data: PlayerDataStore | None = None
    """A player's index, erasures and receipts (the privacy routes); None where nothing uses it."""
    completions: RollupStore | None = None
    lengths: RollupStore | None = None
    """The live-ops families' stores (completed sessions by start, session lengths by end); None where nothing
    uses them (then their builders do not run either)."""
    cache_debt: CacheDebtStore | None = None
    """Where lost cache invalidations are recorded for the rollup builder to pay (None: not recorded)."""

    @cached_property
    def settled_arrivals(self) -> SettledArrivals:
        """The arrivals of settled slots this environment's readers have read, kept for its next requests."""
        return SettledArrivals()

    @cached_property
    def country_starts(self) -> CountryStarts:
        """The country questions, on these services' store, clock, settings and cache."""
        return CountryStarts(self.starts, self.clock, self.settings, self.cache, self.settled_arrivals)

    @cached_property
    def live_ops(self) -> LiveOps:
        """Sessions open now and session lengths, on these services' stores."""
        if self.completions is None or self.lengths is None:
            raise RuntimeError("these services have no live-ops stores")
        return LiveOps(
            self.starts,
            self.completions,
            self.lengths,
            self.clock,
            self.settings,
            self.cache,
            self.settled_arrivals,
        )

    def rollup_builder(self, trackers: dict[str, CompactionTracker] | None = None) -> FamilyBuilders:
        """A builder per rollup family on these services (deployed, one per environment keeps its ``trackers``,
        per family, across runs)."""
        trackers = {} if trackers is None else trackers
        stores = [store for store in (self.starts, self.completions, self.lengths) if store is not None]
        return FamilyBuilders(
            [
                RollupBuilder(
                    store,
                    self.clock,
                    self.settings,
                    self.cache,
                    trackers.setdefault(store.family.name, CompactionTracker()),
                )
                for store in stores
            ],
            CacheDebtCollector(self.cache_debt, self.cache) if self.cache_debt is not None else None,
        )


_lock = threading.Lock()
_services: Services | None = None


def build_services(
    settings: Settings, clock: Clock | None = None, cassandra: CassandraConnection | None = None
) -> Services:
    cassandra = cassandra or CassandraConnection(settings)
    redis = RedisConnection(settings) if settings.cache_enabled else None
    cache_debt = CassandraCacheDebt(cassandra)
    return Services(
        settings=settings,
        clock=clock or SystemClock(),
        sessions=CassandraSessionStore(cassandra),
        starts=CassandraRollupStore(cassandra, settings.start_shards),
        cache=_read_cache(redis, settings.keyspace, cache_debt),
        redis=redis,
        cassandra=cassandra,
        player_data=CassandraPlayerDataStore(cassandra),
        completions=CassandraRollupStore(cassandra, settings.start_shards, COMPLETIONS),
        lengths=CassandraRollupStore(cassandra, settings.start_shards, LENGTHS),
        cache_debt=cache_debt,
    )


def _read_cache(redis: RedisConnection | None, keyspace: str, debt: CacheDebtStore) -> ReadCache:
    if redis is None:
        return NoCache()
    from player_sessions.repositories.redis_cache import RedisReadCache

    # The format's version and the keyspace in every key: a release that caches in another format, or another
    # keyspace sharing the Redis database, never reads these entries.
    return RedisReadCache(
        redis,
        namespace=f"ps:v{CACHE_FORMAT_VERSION}:{keyspace}",
        on_lost_invalidation=debt.owe,
        unpaid_debt=debt.unpaid,
    )


def get_services() -> Services:
    global _services  # noqa: PLW0603  the Lambda environment's cached Services, built on the first request
    if _services is None:
        with _lock:
            if _services is None:
                _services = build_services(with_deployed_secrets(get_settings()))
    return _services


ServicesDependency = Annotated[Services, Depends(get_services)]
"""A route's collaborators, resolved per invocation (``get_services``, unless overridden)."""


def with_deployed_secrets(settings: Settings) -> Settings:
    """Settings with the secrets that are stored in Secrets Manager when deployed (read once per environment):
    the cursor key's current version, and its previous one when the secret has been rotated; the player hash
    key (never rotated)."""
    if settings.cursor_secret_arn is None and settings.player_hash_secret_arn is None:
        return settings
    import boto3
    from pydantic import SecretStr

    client = boto3.client("secretsmanager")
    update: dict[str, SecretStr | None] = {}
    if settings.cursor_secret_arn is not None:
        current = client.get_secret_value(SecretId=settings.cursor_secret_arn)["SecretString"]
        try:
            previous = client.get_secret_value(
                SecretId=settings.cursor_secret_arn, VersionStage="AWSPREVIOUS"
            )
        except client.exceptions.ResourceNotFoundException:  # never rotated
            previous = None
        update["cursor_signing_key"] = SecretStr(current)
        update["cursor_previous_signing_key"] = SecretStr(previous["SecretString"]) if previous else None
    if settings.player_hash_secret_arn is not None:
        secret = client.get_secret_value(SecretId=settings.player_hash_secret_arn)["SecretString"]
        update["player_hash_key"] = SecretStr(secret)
    return settings.model_copy(update=update)


@contextmanager
def use_services(services: Services) -> Iterator[Services]:
    """Makes the handlers use ``services`` inside the block (tests, the benchmark's in-process runs)."""
    global _services  # noqa: PLW0603  swaps, for the block, the cached Services get_services hands out
    previous = _services
    _services = services
    try:
        yield services
    finally:
        _services = previous


def _forget_connections_after_restore() -> None:
    """SnapStart: an environment restored from a snapshot must not reuse the snapshot's sockets (long dead)
    nor its random state (timeuuids draw their node and clock sequence from ``random``)."""
    global _services
    random.seed()
    with _lock:
        stale, _services = _services, None
    if stale is not None:
        if stale.redis is not None:
            stale.redis.close()
        if stale.cassandra is not None:
            stale.cassandra.close()


try:
    from snapshot_restore_py import register_after_restore
except ImportError:  # not a SnapStart runtime: local runs and tests
    pass
else:
    register_after_restore(_forget_connections_after_restore)
