"""What each record of a rollup family adds to its buckets' counts (schema.RollupFamily).

A record is a ``StartKey`` (session id, ts, label) stored in an arrival slot. The builder folds what it adds
into the rollups and readers add the unfolded tail's the same way, through one function per family:
- a start adds one to its country;
- a completed session (its record placed at the start's ts) adds one to its country;
- a session length (placed at the end's ts, labelled ``<country>:<milliseconds>``) adds one to its country,
  its milliseconds to ``<country>/ms`` and one to its bin of the histogram ``<country>/bins`` (a histogram is
  one integer: player_sessions.histograms); a duration outside ``[0, Settings.open_session_hours]`` adds one
  to ``<country>/outside`` instead.
Any record that arrived more than the clock-skew allowance after its own ts also adds one to ``~late``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime

from player_sessions import histograms
from player_sessions.models import StartKey
from player_sessions.schema import COMPLETIONS, LENGTHS, STARTS, RollupFamily
from player_sessions.settings import Settings
from player_sessions.time_buckets import slot_start

Contributions = Callable[[StartKey, int], dict[str, int]]
"""What a record, stored in the given arrival slot, adds to the counts of each bucket holding its ts."""

LATE = "~late"
"""The counts' key of the records that arrived late; every other key names a country (or a country's figure)."""
MILLISECONDS = "ms"
OUTSIDE = "outside"
BINS = "bins"
RELATIVE_ERROR = 0.02
"""The most a quantile read from the histograms is off, relative to the exact one."""
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)


def contributions_of(family: RollupFamily, settings: Settings) -> Contributions:
    skew = settings.clock_skew
    longest_ms = settings.open_session_hours * 3_600_000

    def late(key: StartKey, slot: int) -> dict[str, int]:
        return {LATE: 1} if slot_start(slot) - key.ts > skew else {}

    def one(key: StartKey, slot: int) -> dict[str, int]:
        return {key.country: 1, **late(key, slot)}

    def length(key: StartKey, slot: int) -> dict[str, int]:
        country, ms = parse_length_label(key.country)
        if not 0 <= ms <= longest_ms:
            return {f"{country}/{OUTSIDE}": 1, **late(key, slot)}
        return {
            country: 1,
            f"{country}/{MILLISECONDS}": ms,
            f"{country}/{BINS}": histograms.of_bin(bin_of(ms)),
            **late(key, slot),
        }

    if family is LENGTHS:
        return length
    if family in (STARTS, COMPLETIONS):
        return one
    raise ValueError(f"no contributions defined for the {family.name} family")


def length_label(country: str, start_ts: datetime, end_ts: datetime) -> str:
    """The label of a session's length record: its country and duration in whole milliseconds."""
    return f"{country}:{round((end_ts - start_ts).total_seconds() * 1000)}"


def parse_length_label(label: str) -> tuple[str, int]:
    country, _, ms = label.partition(":")
    return country, int(ms)


def bin_of(ms: int) -> int:
    """The histogram bin of a duration: 0 for 0 ms, else the smallest ``i`` with ``ms <= gamma ** i`` (plus one),
    so every duration in a bin is within RELATIVE_ERROR of the bin's value (``bin_value``)."""
    if ms <= 0:
        return 0
    return math.ceil(math.log(ms) / _LOG_GAMMA - 1e-9) + 1


def bin_value(index: int) -> float:
    """The duration (ms) a bin stands for: the value of ``(gamma^(i-2), gamma^(i-1)]`` closest, relatively, to
    both ends."""
    if index == 0:
        return 0.0
    return 2 * _GAMMA ** (index - 1) / (_GAMMA + 1)


def countries_only(counts: Mapping[str, int]) -> dict[str, int]:
    """The counts without the late records' key."""
    return {key: n for key, n in counts.items() if key != LATE}
