"""The read cache on Redis: generation-keyed entries, fail-open, behind a circuit breaker.

Key schema (``ns`` is the namespace):
- ``{ns}:epoch``: the global epoch, no TTL; bumped to make every entry cached so far unreachable at once;
- ``{ns}:gen:{scope}``: the generation of one scope, INCR'd by ``invalidate``; it expires after three entry
  TTL caps (refreshed on every bump), so per-player generations don't pile up, and a missing one reads as 0;
- ``{ns}:e{epoch}:{scope}={gen}:...|{key}``: one cached value, stored with a TTL of at most the cap.

Why a cached value is never older than an acknowledged write: a reader reads the epoch and its scopes'
generations *before* it reads the database, and stores what it computed under exactly those; a writer bumps
the generations of what it changed *after* the database acknowledged its write. A value computed from data
older than an acknowledged write was therefore read under a generation the write has since bumped: it is
stored under a prefix no later lookup builds, and is never found again (the race "lookup, write + invalidate,
store" included). An expired generation key reads as 0 again, but only once the entries stored under its
earlier values have expired too: it outlives its last bump by three caps, an entry outlives its store by one
(and a request lasts far less than the other two). This assumes Redis does not evict generation keys early:
size the cache, or use an eviction policy that evicts the short-lived entries first (volatile-ttl).

Redis is an optimisation, never a dependency: every error or timeout is swallowed (a lookup misses, a store or
an invalidation does nothing), and after a failure lookups and stores skip the cache for ``breaker_seconds``
so a frozen Redis costs them one short timeout per breaker period per process, not one per request. Two calls
are never skipped: ``bump_epoch``, called only by the builder paying a debt, at most once a second; and
``invalidate``, a write's correctness (it is retried once at once, and tried once while the breaker is open: a
frozen Redis costs a write one timeout). An invalidation that still fails is remembered: until the epoch has
been bumped on the next successful contact, this process serves nothing from the cache, so a value cached
before the lost invalidation is never served by it. It is also handed to ``on_lost_invalidation`` (the
composition root records it in Cassandra, where the rollup builder bumps the epoch for every other process as
soon as Redis answers: repositories.cache_debt). And a process that saw Redis fail may have missed another's
loss meanwhile: before it looks anything up again, it reads that record through
``unpaid_debt`` and bumps the epoch itself if a debt is unpaid (or unreadable), not waiting for the builder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING

import redis

from player_sessions.observability import MetricUnit, logger, metrics
from player_sessions.read_counts import count_cache_lookup
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.cache_protocol import CacheHealth, CacheToken

if TYPE_CHECKING:
    from player_sessions.repositories.cache_protocol import ReadCache

# ValueError: an epoch or generation that is not an integer (a foreign key clash); a miss, not a crash.
_CACHE_FAILURES = (redis.RedisError, OSError, TimeoutError, ValueError)


class _Admission(Enum):
    CLOSED = "closed"
    """The breaker is closed: use Redis."""
    PROBE = "probe"
    """The breaker period is over: this one call tries Redis; the others skip it for one more period."""
    SKIP = "skip"
    """The breaker is open: don't touch Redis."""


class RedisReadCache:
    """A ``ReadCache`` on Redis (see the module docstring for the key schema and the correctness argument).

    Metrics: ``CacheHits`` / ``CacheMisses`` per lookup (a skipped or failed lookup is a miss) and
    ``CacheErrors`` per failed contact with Redis.
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
        namespace: str = "ps",
        entry_ttl_cap_seconds: int = 300,
        breaker_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_lost_invalidation: Callable[[], None] | None = None,
        unpaid_debt: Callable[[], int | None] | None = None,
    ) -> None:
        if entry_ttl_cap_seconds < 1:
            raise ValueError("entry_ttl_cap_seconds must be at least 1")
        self._connection = connection
        self._namespace = namespace
        self._entry_ttl_cap_seconds = entry_ttl_cap_seconds
        self._generation_ttl_seconds = 3 * entry_ttl_cap_seconds
        self._breaker_seconds = breaker_seconds
        self._clock = clock
        self._epoch_key = f"{namespace}:epoch"
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._epoch_bump_owed = False
        self._on_lost_invalidation = on_lost_invalidation
        # Counts lost invalidations, so that paying the bump does not forget one lost while it was being paid.
        self._lost_invalidations = 0
        self._unpaid_debt = unpaid_debt
        # Set by each failure (counted, as above): the debts recorded since are read before the next lookup.
        self._debt_unread = False
        self._failures = 0
        self._debt_bumped_for: int | None = None

    def lookup(self, scopes: Sequence[str], key: str) -> tuple[CacheToken | None, bytes | None]:
        admission = self._admit()
        if admission is _Admission.SKIP:
            self._count("CacheMisses")
            count_cache_lookup(hit=False)
            return None, None
        with self._lock:
            failures_before = self._failures
        try:
            client = self._connection.client()
            self._pay_owed_epoch_bump(client)
            self._pay_recorded_debt(client)
            pipe = client.pipeline(transaction=False)
            pipe.get(self._epoch_key)
            for scope in scopes:
                pipe.get(self._generation_key(scope))
            epoch, *generations = pipe.execute()
            prefix = f"{self._namespace}:e{_as_int(epoch)}:" + ":".join(
                f"{scope}={_as_int(generation)}"
                for scope, generation in zip(scopes, generations, strict=True)
            )
            value = client.get(f"{prefix}|{key}")
        except _CACHE_FAILURES as error:
            self._record_failure("lookup", error)
            self._count("CacheMisses")
            count_cache_lookup(hit=False)
            return None, None
        self._record_success(admission)
        with self._lock:
            # An invalidation lost by another thread meanwhile, or a failure seen whose debt is not read yet: what
            # was just read may predate it.
            doubtful = self._epoch_bump_owed or self._failures != failures_before
        if doubtful:
            self._count("CacheMisses")
            count_cache_lookup(hit=False)
            return None, None
        self._count("CacheHits" if value is not None else "CacheMisses")
        count_cache_lookup(hit=value is not None)
        return CacheToken(prefix), value

    def ping(self) -> CacheHealth:
        started = time.perf_counter()
        try:
            self._connection.client().ping()
        except _CACHE_FAILURES as error:
            self._saw_failure()
            return CacheHealth(status="down", detail=type(error).__name__)
        return CacheHealth(status="up", latency_ms=round((time.perf_counter() - started) * 1000, 2))

    def store(self, token: CacheToken | None, key: str, value: bytes, ttl_seconds: int) -> None:
        if token is None or ttl_seconds < 1:
            return
        admission = self._admit()
        if admission is _Admission.SKIP:
            return
        try:
            client = self._connection.client()
            if self._pay_owed_epoch_bump(client):
                # The token predates the bump just paid: nothing stored under it can be found any more.
                self._record_success(admission)
                return
            client.set(f"{token.key_prefix}|{key}", value, ex=min(ttl_seconds, self._entry_ttl_cap_seconds))
        except _CACHE_FAILURES as error:
            self._record_failure("store", error)
            return
        self._record_success(admission)

    def invalidate(self, scopes: Sequence[str]) -> None:
        """Bumps the scopes' generations. Never skipped by the breaker: a reader elsewhere may reach Redis while
        this process cannot, and would serve what the lost invalidation hid until the debt is paid. So while
        the breaker is open it is tried once (a frozen Redis costs a write one timeout), and otherwise a failed
        attempt is retried at once (a timeout on a loaded host is usually a blip); only then is it owed."""
        if not scopes:
            return
        attempts = 1 if self._admit() is _Admission.SKIP else INVALIDATION_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                client = self._connection.client()
                self._pay_owed_epoch_bump(client)
                pipe = client.pipeline(transaction=False)
                for scope in scopes:
                    generation_key = self._generation_key(scope)
                    pipe.incr(generation_key)
                    pipe.expire(generation_key, self._generation_ttl_seconds)
                pipe.execute()
            except _CACHE_FAILURES as error:
                if attempt < attempts:
                    self._saw_failure()
                    self._count("CacheErrors")
                    continue
                # The bumps may or may not have reached Redis: assume they did not.
                self._owe_epoch_bump()
                self._record_failure("invalidate", error)
                return
            self._close_breaker()
            return

    def forget(self, scopes: Sequence[str]) -> int | None:
        """Bumps the epoch first: every value cached so far, and any a reader stores meanwhile, is unreachable
        for good (an erasure is rare; the cache refills). Then deletes every entry of every epoch and generation
        found by ``SCAN`` under each scope, and the scopes' generation keys (a player's names the player). SCAN
        walks the whole database, a page of keys per round trip; the cache holds entries of at most the TTL
        cap. A reader that read before the bump and stores after the scan leaves an entry that no lookup finds
        and that expires within the cap."""
        if not scopes:
            return 0
        try:
            client = self._connection.client()
            client.incr(self._epoch_key)
            deleted = 0
            for scope in scopes:
                pattern = f"{_glob_escape(self._namespace)}:e*{_glob_escape(scope)}=*"
                batch: list[bytes] = []
                for key in client.scan_iter(match=pattern, count=FORGET_SCAN_PAGE):
                    batch.append(key)
                    if len(batch) >= FORGET_SCAN_PAGE:
                        deleted += _delete_each(client, batch)
                        batch = []
                deleted += _delete_each(client, [*batch, self._generation_key(scope).encode()])
        except _CACHE_FAILURES as error:
            self._record_failure("forget", error)
            return None
        return deleted

    def _generation_key(self, scope: str) -> str:
        return f"{self._namespace}:gen:{scope}"

    def bump_epoch(self) -> bool:
        """Makes every value cached so far unreachable at once; False when Redis could not be reached. Tried even
        while the breaker is open, which it closes when Redis answers: the builder pays a debt with it as soon as
        Redis is back, and calls it only while one is unpaid, at most once a second (domain.cache_debt)."""
        try:
            self._connection.client().incr(self._epoch_key)
        except _CACHE_FAILURES as error:
            self._record_failure("bump the epoch", error)
            return False
        self._close_breaker()
        return True

    def _owe_epoch_bump(self) -> None:
        with self._lock:
            self._epoch_bump_owed = True
            self._lost_invalidations += 1
        if self._on_lost_invalidation is not None:
            try:
                self._on_lost_invalidation()
            except Exception as error:
                logger.warning("could not record a lost cache invalidation", extra={"reason": repr(error)})

    def _pay_owed_epoch_bump(self, client: redis.Redis[bytes]) -> bool:
        """Bumps the epoch if an invalidation was lost; True if it did. Raises if Redis fails (still owed)."""
        with self._lock:
            if not self._epoch_bump_owed:
                return False
            lost_before = self._lost_invalidations
        client.incr(self._epoch_key)
        with self._lock:
            if self._lost_invalidations == lost_before:
                self._epoch_bump_owed = False
        logger.info("redis cache epoch bumped", extra={"lost_invalidations": lost_before})
        return True

    def _pay_recorded_debt(self, client: redis.Redis[bytes]) -> None:
        """Once Redis failed here, bumps the epoch if the recorded debt is unpaid and was not bumped for here, or
        cannot be read. Raises if Redis fails (the debt is read again next time)."""
        with self._lock:
            if not self._debt_unread or self._unpaid_debt is None:
                return
            failures_before = self._failures
        try:
            owed = self._unpaid_debt()
        except Exception as error:
            client.incr(self._epoch_key)
            logger.warning(
                "could not read the cache's debt; bumped the epoch instead", extra={"reason": repr(error)}
            )
        else:
            with self._lock:
                bump = owed is not None and owed != self._debt_bumped_for
            if bump:
                client.incr(self._epoch_key)
                with self._lock:
                    self._debt_bumped_for = owed
                logger.info("redis cache epoch bumped for a debt recorded elsewhere")
        with self._lock:
            if self._failures == failures_before:
                self._debt_unread = False

    def _admit(self) -> _Admission:
        with self._lock:
            if self._open_until is None:
                return _Admission.CLOSED
            now = self._clock()
            if now < self._open_until:
                return _Admission.SKIP
            # Reserve the probe: a frozen Redis then costs one timeout per period, however many threads call.
            self._open_until = now + self._breaker_seconds
            return _Admission.PROBE

    def _record_success(self, admission: _Admission) -> None:
        if admission is _Admission.PROBE:
            self._close_breaker()

    def _close_breaker(self) -> None:
        with self._lock:
            was_open, self._open_until = self._open_until is not None, None
        if was_open:
            logger.info("redis cache reachable again")

    def _record_failure(self, operation: str, error: Exception) -> None:
        with self._lock:
            newly_open = self._open_until is None
            self._open_until = self._clock() + self._breaker_seconds
        self._saw_failure()
        self._count("CacheErrors")
        if newly_open:
            logger.warning(
                "redis cache unavailable; bypassing it",
                extra={
                    "operation": operation,
                    "reason": f"{type(error).__name__}: {error}",
                    "breaker_seconds": self._breaker_seconds,
                },
            )

    def _saw_failure(self) -> None:
        """Another environment may lose an invalidation while Redis fails this one: the debt is read before the
        next lookup (``_pay_recorded_debt``)."""
        with self._lock:
            self._failures += 1
            self._debt_unread = True

    @staticmethod
    def _count(name: str) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def _as_int(raw: bytes | str | None) -> int:
    return 0 if raw is None else int(raw)


if TYPE_CHECKING:
    # mypy holds the cache to the Protocol the domain takes it as (nothing runs).
    _conforms: type[ReadCache] = RedisReadCache


INVALIDATION_ATTEMPTS = 2
"""Tries of an invalidation while the breaker is closed: the second follows a failed first at once."""

FORGET_SCAN_PAGE = 1000
"""Keys per SCAN page, and per round trip of single-key deletes, when an erasure deletes a scope's entries."""


def _delete_each(client: redis.Redis[bytes], keys: list[bytes]) -> int:
    """Deletes the keys one ``DEL`` each, in one round trip (a pipeline, not a transaction): deployed, ElastiCache
    Serverless runs in cluster mode, where a command naming keys of several hash slots fails with CROSSSLOT."""
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    return sum(int(found) for found in pipe.execute())


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern (a player id may hold ``*``, ``?``, ``[`` or ``\\``)."""
    return "".join(f"\\{char}" if char in "*?[]\\^" else char for char in text)
