"""An open-model load: requests sent at a fixed arrival rate, whatever the answers' latency (players arrive whether
or not the service is slow), drawn from a weighted mix of routes. Latency counts from when a request was due,
not when a free client sent it, so a backlog in the generator is not hidden (no coordinated omission)."""

from __future__ import annotations

import http.client
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from player_sessions_local.measure.http_client import HttpClient, MakeRequest
from player_sessions_local.measure.stats import Latencies

REFUSED_AT_MOST = 0.01
"""The share of requests a rate may have refused (429) and still count as held."""

SENDERS = 64
"""Clients sending at once at most: enough that the generator never waits for an answer to send on time."""


@dataclass(frozen=True)
class MixEntry:
    route: str
    weight: float
    make_request: MakeRequest


@dataclass
class RateResult:
    rate: float
    seconds: float
    admitted: dict[str, Latencies] = field(default_factory=dict)
    """Per route, the requests answered below 300."""
    refused: Latencies = field(default_factory=Latencies)
    """The throttled ones (429): how fast the refusal came."""
    server_errors: int = 0
    """5xx answers and requests that got no answer."""
    sent: int = 0

    def holds(self, p90_limit_ms: float, refused_at_most: float = REFUSED_AT_MOST) -> bool:
        """Every route's p90 within the limit, no 5xx, and (nearly) nothing refused: a rate served only by
        throttling part of it is past capacity."""
        return (
            self.server_errors == 0
            and len(self.refused.latencies_ms) <= refused_at_most * self.sent
            and all(
                route.percentile(0.9) <= p90_limit_ms
                for route in self.admitted.values()
                if route.latencies_ms
            )
        )

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def run_open_model(
    url: str, mix: Sequence[MixEntry], *, rate: float, seconds: float, seed: int, api_key: str | None = None
) -> RateResult:
    """Sends ``rate`` requests a second for ``seconds``, each drawn from ``mix`` by weight."""
    result = RateResult(rate, seconds, {entry.route: Latencies() for entry in mix})
    rng = random.Random(seed)
    jobs: queue.Queue[tuple[float, MixEntry, tuple[str, str, bytes | None]] | None] = queue.Queue()
    lock = threading.Lock()

    def sender() -> None:
        with HttpClient(url, api_key, timeout=60) as client:
            while (job := jobs.get()) is not None:
                due, entry, (method, path, body) = job
                try:
                    status, answer = client.request(method, path, body)
                except (OSError, http.client.HTTPException) as error:
                    status, answer = 0, str(error).encode()
                elapsed = (time.perf_counter() - due) * 1000
                with lock:
                    if status < 300 and status != 0:
                        result.admitted[entry.route].latencies_ms.append(elapsed)
                    elif status == 429:
                        result.refused.latencies_ms.append(elapsed)
                    else:
                        result.server_errors += 1
                        result.admitted[entry.route].add_error(f"{method} {path}: {status} {answer[:200]!r}")

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    weights = [entry.weight for entry in mix]
    interval = 1.0 / rate
    started = time.perf_counter()
    number = 0
    while (due := started + number * interval) < started + seconds:
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        entry = rng.choices(mix, weights)[0]
        jobs.put((due, entry, entry.make_request(rng)))
        number += 1
    result.sent = number
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    return result


def find_capacity(
    url: str,
    mix: Sequence[MixEntry],
    rates: Sequence[float],
    *,
    seconds: float,
    p90_limit_ms: float,
    seed: int,
    api_key: str | None = None,
    settle: Callable[[], object] | None = None,
    refused_at_most: float = REFUSED_AT_MOST,
    refinements: int = 1,
) -> tuple[float, list[RateResult]]:
    """The highest rate that holds (0 if none), and every rate's result, in the order run (search_capacity).
    ``settle`` runs before each rate, so that every rate starts from the same state (the builders caught up
    with what the rate before wrote)."""
    results: list[RateResult] = []

    def holds(rate: float) -> bool:
        if settle is not None:
            settle()
        result = run_open_model(
            url, mix, rate=rate, seconds=seconds, seed=seed + len(results), api_key=api_key
        )
        results.append(result)
        return result.holds(p90_limit_ms, refused_at_most)

    return search_capacity(rates, holds, refinements=refinements), results


FLOOR_RATE = 2.5
"""The lowest rate the search tries when even the first of its rates does not hold."""


def search_capacity(
    rates: Sequence[float], holds: Callable[[float], bool], floor: float = FLOOR_RATE, refinements: int = 1
) -> float:
    """The highest rate that holds, 0 if none does. Steps up through ``rates`` (ascending) to the first that
    does not hold, then tries the rate halfway between it and the last that held, ``refinements`` times
    (each try narrows the pair). When the first rate already fails (a slow host), halves it until one holds
    or the rate is below ``floor``, then narrows between that and the lowest that failed the same way."""
    held, failed = 0.0, None
    for rate in rates:
        if not holds(rate):
            failed = rate
            break
        held = rate
    if failed is None:
        return held
    if held == 0.0:
        rate = failed / 2
        while rate >= floor:
            if holds(rate):
                held = rate
                break
            failed, rate = rate, rate / 2
        if held == 0.0:
            return 0.0
    for _ in range(refinements):
        halfway = round((held + failed) / 2, 1)
        if not held < halfway < failed:
            break
        if holds(halfway):
            held = halfway
        else:
            failed = halfway
    return held
