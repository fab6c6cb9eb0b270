"""Fresh batches of events as a game client sends them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

SESSIONS_PER_BATCH = 5
"""Five sessions, start and end: a batch of ten events, the default batch limit."""


def completed_sessions_batch(
    rng: random.Random,
    players: Sequence[tuple[str, str]],
    *,
    sessions: int = SESSIONS_PER_BATCH,
    ended_within: timedelta = timedelta(minutes=30),
    now: datetime | None = None,
) -> list[dict]:
    """``sessions`` new sessions of known players (player id and country), each started and ended within the
    last ``ended_within``, start and end in the same batch."""
    now = now or datetime.now(UTC)
    batch = []
    for _ in range(sessions):
        player, country = rng.choice(players)
        # New on every run, not drawn from the seed: a seeded id posted again by a later run, with
        # other timestamps, would be a second start of a stored session (rejected: domain.session_identity)
        session_id = str(uuid.uuid4())
        started = now - timedelta(seconds=rng.uniform(60, ended_within.total_seconds()))
        ended = started + (now - started) * rng.random()
        batch.append(
            {
                "event": "start",
                "player_id": player,
                "session_id": session_id,
                "country": country,
                "ts": started.isoformat(),
            }
        )
        batch.append({"event": "end", "player_id": player, "session_id": session_id, "ts": ended.isoformat()})
    return batch
