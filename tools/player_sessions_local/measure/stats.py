"""Latencies and errors of one route, and their percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

QUANTILES = (0.5, 0.9, 0.99)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values fall (nearest rank); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


@dataclass
class Latencies:
    """What clients measured on one route: each answered request's time, and the failures."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def add_error(self, description: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or description

    def merge(self, other: Latencies) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error

    def summary(self) -> dict[str, float]:
        """``p50_ms``, ``p90_ms``, ``p99_ms``, rounded to 0.1 ms."""
        return {f"p{int(q * 100)}_ms": round(self.percentile(q), 1) for q in QUANTILES}
