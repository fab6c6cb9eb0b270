"""API Gateway's usage-plan throttle, emulated: a token bucket per API key (rate per second, burst), refusing
at once with 429 when empty, as API Gateway does. The limits are the deployed usage plan's
(infra_cdk.constants)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; each request takes one or is refused."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()
        self.refused = 0

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.refused += 1
            return False


def usage_plan_bucket() -> TokenBucket:
    """A bucket with the deployed usage plan's rate and burst."""
    from player_sessions_local.gateway.local_functions import ensure_repository_root_on_path

    ensure_repository_root_on_path()
    from infra_cdk.constants import USAGE_PLAN_BURST_LIMIT, USAGE_PLAN_RATE_LIMIT

    return TokenBucket(USAGE_PLAN_RATE_LIMIT, USAGE_PLAN_BURST_LIMIT)
