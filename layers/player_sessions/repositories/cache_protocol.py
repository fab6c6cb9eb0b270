"""The read cache the domain uses (cache-aside), as a small interface.

Correctness rests on generations: every cached value is stored under the generations of its scopes *as read
before the database read*; a write bumps the generations of what it changed *after* Cassandra acknowledged it and
before it answers. A value cached from data older than an acknowledged write is therefore never found again.

Scopes:
- ``starts:<country>``: a start of that country stored (its cached pages: ``country_scope``);
- ``rollups`` (``rollups:<family>`` for the live-ops families): a fold of the builder changed the cached coarse
  sums of the metrics (domain.country_starts.counting.cache_scope);
- ``player:<player_id>``: a session of that player completed or erased (the player's history: ``player_scope``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

CacheStatus = Literal["up", "down", "disabled"]

CACHE_FORMAT_VERSION = 1
"""In every key (the composition root puts it in the namespace): a release that changes how any value is
cached bumps it, so that no environment reads entries written in another format; those expire on their TTL."""

_Value = TypeVar("_Value")


def country_scope(country: str) -> str:
    """The scope of a country's cached pages of starts."""
    return f"starts:{country}"


def player_scope(player_id: str) -> str:
    """The scope of a player's cached history."""
    return f"player:{player_id}"


def decoded_or_miss(raw: bytes | None, decode: Callable[[bytes], _Value]) -> _Value | None:
    """A cached value decoded, or None (a miss: the caller reads the database) when it is absent or does not
    decode. A cache holds nothing a request cannot do without; an unreadable entry is never a 5xx."""
    if raw is None:
        return None
    try:
        return decode(raw)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError):
        return None


@dataclass(frozen=True)
class CacheHealth:
    status: CacheStatus
    latency_ms: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class CacheToken:
    """The generations seen before reading the database; values computed after are stored under them."""

    key_prefix: str


class ReadCache(Protocol):
    def lookup(self, scopes: Sequence[str], key: str) -> tuple[CacheToken | None, bytes | None]:
        """The current token for ``scopes`` and the value cached under it for ``key`` (None on a miss).

        The token is None when the cache cannot be used now (down, slow, disabled): then nothing is written.
        Never raises and never waits longer than the configured short timeout.
        """

    def store(self, token: CacheToken | None, key: str, value: bytes, ttl_seconds: int) -> None:
        """Caches ``value`` under ``token``; does nothing when the token is None. Never raises."""

    def ping(self) -> CacheHealth:
        """Whether the cache answers now, and how fast (a round trip that bypasses any breaker). Never raises."""

    def invalidate(self, scopes: Sequence[str]) -> None:
        """Bumps the generations of ``scopes`` so that values cached before are never found again.

        Never raises: when the cache cannot be reached, the failure is remembered and, on the next successful
        contact, every value cached so far is made unreachable at once (a global epoch bump).
        """

    def bump_epoch(self) -> bool:
        """Makes every value cached so far unreachable at once (a lost invalidation paid for every environment:
        repositories.cache_debt); False when the cache could not be reached. Never raises."""

    def forget(self, scopes: Sequence[str]) -> int | None:
        """Deletes every value cached under any of ``scopes``, whatever its generation, and the scopes'
        generations (an erasure: their keys name the player). Returns how many keys it deleted, or None when
        the cache could not be reached (its values then expire within the entry TTL cap). Never raises."""


class NoCache:
    """The cache switched off: every lookup misses and nothing is stored."""

    def lookup(self, scopes: Sequence[str], key: str) -> tuple[CacheToken | None, bytes | None]:  # noqa: ARG002  the ReadCache Protocol's signature; the switched-off cache ignores it
        return None, None

    def store(self, token: CacheToken | None, key: str, value: bytes, ttl_seconds: int) -> None:  # noqa: ARG002  the ReadCache Protocol's signature; the switched-off cache ignores it
        return None

    def ping(self) -> CacheHealth:
        return CacheHealth(status="disabled")

    def invalidate(self, scopes: Sequence[str]) -> None:  # noqa: ARG002  the ReadCache Protocol's signature; the switched-off cache ignores it
        return None

    def bump_epoch(self) -> bool:
        return True

    def forget(self, scopes: Sequence[str]) -> int | None:  # noqa: ARG002  the ReadCache Protocol's signature; the switched-off cache holds nothing
        return 0


if TYPE_CHECKING:
    # mypy holds the switched-off cache to the Protocol (nothing runs).
    _conforms: type[ReadCache] = NoCache
