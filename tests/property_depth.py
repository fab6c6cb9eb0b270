"""How many examples the property tests draw: their usual number times ``PROPERTY_DEPTH`` (default 1).

Every run of the suite draws the usual number; ``make test-deep`` draws twenty times as many, which takes minutes
(docs/decisions.md, "Code shape"). Hypothesis keeps what failed in ``.hypothesis/`` and tries it first next time."""

from __future__ import annotations

import os


def _depth() -> int:
    raw = os.environ.get("PROPERTY_DEPTH", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"PROPERTY_DEPTH must be a whole number of at least 1, got {raw!r}")
    return int(raw)


DEPTH = _depth()


def examples(usual: int) -> int:
    """``usual`` examples, times the depth asked for."""
    return usual * DEPTH
