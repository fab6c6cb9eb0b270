"""The rollup builder pays the cache's debts: an invalidation lost by any environment (repositories.cache_debt)
makes it bump the cache's epoch, once Redis answers, so that no environment serves what it cached before."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.repositories.cache_protocol import ReadCache
from player_sessions.repositories.protocols import CacheDebtStore

DEBT_CHECK_SECONDS = 1.0
"""How often the builder of part 0 reads the debt (one read, two rows), and tries to bump the epoch while one is
unpaid, its cache's breaker or not: an environment that never saw Redis fail serves an entry cached before a
lost invalidation for about this long after Redis answers again, plus the time to part 0's next fold."""


@dataclass
class CacheDebtCollector:
    debt: CacheDebtStore
    cache: ReadCache
    clock: Callable[[], float] = time.monotonic
    _checked_at: float = field(default=-math.inf, init=False)

    def collect(self) -> bool:
        """Bumps the epoch if a debt is unpaid (read at most every DEBT_CHECK_SECONDS); True if it paid one.
        Never raises: what it cannot read or bump now is there to pay next time."""
        now = self.clock()
        if now - self._checked_at < DEBT_CHECK_SECONDS:
            return False
        self._checked_at = now
        try:
            owed = self.debt.unpaid()
            if owed is None or not self.cache.bump_epoch():
                return False
            self.debt.mark_paid(owed)
        except DatabaseUnavailableError:
            return False
        return True
