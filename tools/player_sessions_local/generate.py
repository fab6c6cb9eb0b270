"""Realistic synthetic session events, in the assignment's format (JSON lines), deterministic from a seed.

    python -m player_sessions_local.generate --events 1000000 --out .local/data/events.jsonl.gz [--seed 42]

What it makes, on purpose:
- players whose activity is skewed (a few play a lot, most a little: Zipf-like weights);
- about 60 countries with a skewed share (a handful carry most sessions), each player in one country;
- session lengths drawn from a log-normal around 25 minutes, from under a minute to several hours;
- unfinished sessions (a start and no end), end-only events (the start was lost), exact duplicates (client
  retries) and lines out of order (ends written before their starts, late uploads);
- timestamps like the sample's (``2016-11-22T20:40:50``: no zone, no fraction) spread over ``--days`` ending at
  ``--end`` (default: now), with a daily rhythm.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import json
import math
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from player_sessions_local.event_files import open_for_writing

COUNTRIES = [
    "US",
    "BR",
    "DE",
    "GB",
    "FR",
    "RU",
    "JP",
    "KR",
    "CN",
    "IN",
    "PK",
    "ID",
    "MX",
    "TR",
    "PL",
    "IT",
    "ES",
    "CA",
    "AU",
    "NL",
    "SE",
    "NO",
    "FI",
    "DK",
    "UA",
    "AR",
    "CO",
    "CL",
    "PE",
    "VN",
    "TH",
    "PH",
    "MY",
    "SG",
    "SA",
    "AE",
    "EG",
    "NG",
    "ZA",
    "KE",
    "MA",
    "IL",
    "IR",
    "BD",
    "NZ",
    "PT",
    "GR",
    "CZ",
    "HU",
    "RO",
    "AT",
    "CH",
    "BE",
    "IE",
    "BY",
    "KZ",
    "VE",
    "EC",
    "UY",
]


@dataclass(frozen=True)
class Shape:
    unfinished: float = 0.06
    """Share of sessions whose end never arrives."""
    end_only: float = 0.02
    """Share of sessions whose start was lost."""
    duplicates: float = 0.03
    """Share of lines sent twice (retries)."""
    out_of_order: float = 0.05
    """Share of lines moved later in the file (late uploads, ends before starts)."""


def generate_events(
    count: int, seed: int, end: datetime, days: int, shape: Shape = Shape()
) -> Iterator[dict]:
    """About ``count`` events (start and end lines), in file order."""
    rng = random.Random(seed)
    players = max(10, count // 40)
    player_ids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(players)]
    country_weights = [1 / (rank + 1) ** 1.1 for rank in range(len(COUNTRIES))]
    player_country = rng.choices(COUNTRIES, weights=country_weights, k=players)
    player_cumulative = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(players)))
    span = timedelta(days=days).total_seconds()
    start_of_span = end - timedelta(days=days)
    delayed: list[tuple[int, int, dict]] = []
    tiebreak = itertools.count()
    emitted = 0
    while emitted < count:
        player = bisect.bisect_left(player_cumulative, rng.random() * player_cumulative[-1])
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        started = start_of_span + timedelta(seconds=_daily_rhythm(rng, span))
        length = timedelta(seconds=min(8 * 3600, max(20, rng.lognormvariate(math.log(25 * 60), 0.9))))
        lines = []
        kind = rng.random()
        if kind >= shape.end_only:
            lines.append(
                {
                    "player_id": player_ids[player],
                    "country": player_country[player],
                    "event": "start",
                    "session_id": session_id,
                    "ts": _format(started),
                }
            )
        if (kind < shape.end_only or kind >= shape.end_only + shape.unfinished) and started + length <= end:
            lines.append(
                {
                    "player_id": player_ids[player],
                    "event": "end",
                    "session_id": session_id,
                    "ts": _format(started + length),
                }
            )
        for line in lines:
            copies = 2 if rng.random() < shape.duplicates else 1
            for _ in range(copies):
                if rng.random() < shape.out_of_order:
                    heapq.heappush(delayed, (emitted + rng.randint(1, 5000), next(tiebreak), line))
                    continue
                yield line
                emitted += 1
        while delayed and delayed[0][0] <= emitted:
            yield heapq.heappop(delayed)[2]
            emitted += 1
    while delayed:
        yield heapq.heappop(delayed)[2]


def _daily_rhythm(rng: random.Random, span_seconds: float) -> float:
    # More sessions in the evening (UTC here, for simplicity): accept a uniform draw with a daily weight.
    while True:
        offset = rng.random() * span_seconds
        hour = (offset / 3600) % 24
        if rng.random() < 0.45 + 0.55 * math.sin(math.pi * hour / 24) ** 2:
            return offset


def _format(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True, help="file to write; .gz or .bz2 compresses")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=30, help="how many days the events span")
    parser.add_argument("--end", type=datetime.fromisoformat, default=None, help="newest time (default: now)")
    args = parser.parse_args(argv)
    end = (args.end or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    written = 0
    with open_for_writing(args.out) as out:
        for event in generate_events(args.events, args.seed, end, args.days):
            out.write(json.dumps(event) + "\n")
            written += 1
    print(f"wrote {written} events to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
