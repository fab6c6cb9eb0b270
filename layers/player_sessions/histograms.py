"""A histogram as one integer, so that adding two histograms is adding two integers.

A session-lengths rollup keeps, per country, how many durations fell in each log-scale bin
(domain.country_starts.records.bin_of). Bin ``i`` is the ``i``-th 64-bit field of the integer: a duration in bin
``i`` adds ``1 << 64 * i``. The counts never go negative and stay far below 2**64, so a sum never carries from one
field into the next and the integers add like the histograms they stand for. Rollup counts therefore stay a
``dict[str, int]`` that every family sums the same way, and a bucket's histogram of a country is one value
instead of one key per bin: what a reader decodes and adds grows with the countries, not with how varied the
durations are (docs/decisions.md, "Session lengths: a histogram is one integer").

As text (a rollup row's JSON, a cached sum), an integer of 2**64 or more is such a histogram and is written as
``"<first bin>:<bytes per count>:<hex>"``: the counts from the first non-empty bin on, each in as few bytes as
the largest needs (little-endian). Everything else is a JSON number, as before.
"""

from __future__ import annotations

import json
import sys
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from itertools import accumulate

FIELD_BITS = 64
_FIELD_BYTES = FIELD_BITS // 8
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
"""Bytes per count in the text form, and the array typecode that holds that many."""
_SMALLEST_WRITTEN_AS_TEXT = 1 << FIELD_BITS
assert all(array(code).itemsize == width for width, code in _TYPECODES.items())


def of_bin(index: int, count: int = 1) -> int:
    """The histogram with ``count`` in bin ``index`` and nothing else."""
    return count << (FIELD_BITS * index)


def bin_counts(histogram: int) -> array[int]:
    """The count of each bin, from bin 0 to the last non-empty one."""
    fields = array("Q")
    fields.frombytes(histogram.to_bytes(_FIELD_BYTES * _fields_in(histogram), "little"))
    if sys.byteorder != "little":
        fields.byteswap()
    return fields


def cumulative_counts(histogram: int) -> list[int]:
    """How many values fall in each bin or a lower one."""
    return list(accumulate(bin_counts(histogram)))


def nearest_rank_bin(cumulative: list[int], rank: int) -> int | None:
    """The bin holding the ``rank``-th smallest value (from 1), given the histogram's ``cumulative_counts``;
    None when it holds fewer."""
    index = bisect_left(cumulative, rank)
    return index if index < len(cumulative) else None


def encode(histogram: int) -> str:
    first = ((histogram & -histogram).bit_length() - 1) // FIELD_BITS  # the lowest set bit's field
    fields = bin_counts(histogram >> (FIELD_BITS * first))
    width = next(width for width in _TYPECODES if max(fields) < 1 << (8 * width))
    packed = array(_TYPECODES[width], fields)
    if sys.byteorder != "little":
        packed.byteswap()
    return f"{first}:{width}:{packed.tobytes().hex()}"


def decode(text: str) -> int:
    first, width, digits = text.split(":")
    size = int(width)
    packed = bytes.fromhex(digits)
    # Widened to 64-bit fields by slices (each byte of a count to its place in its field): no loop per bin.
    fields = bytearray(_FIELD_BYTES * (len(packed) // size))
    for byte in range(size):
        fields[byte::_FIELD_BYTES] = packed[byte::size]
    return int.from_bytes(fields, "little") << (FIELD_BITS * int(first))


def dumps_counts(counts: Mapping[str, int]) -> str:
    """Counts as JSON, histograms as text (the module's docstring), keys sorted."""
    return json.dumps(
        {key: encode(n) if n >= _SMALLEST_WRITTEN_AS_TEXT else n for key, n in counts.items()},
        separators=(",", ":"),
        sort_keys=True,
    )


def loads_counts(text: str) -> dict[str, int]:
    return {key: decode(n) if isinstance(n, str) else n for key, n in json.loads(text).items()}


def _fields_in(histogram: int) -> int:
    return max(1, -(-histogram.bit_length() // FIELD_BITS))
