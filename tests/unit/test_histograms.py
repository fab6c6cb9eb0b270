"""A histogram as one integer (player_sessions.histograms): sums, ranks and its text form, against plain lists of
bin counts; and the session-lengths figures read from rows of either form."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from player_sessions import histograms
from player_sessions.domain.country_starts.records import bin_of, bin_value
from player_sessions.domain.live_ops import durations_by_country

BINS = 450
"""More than the bins of the longest open session (12 hours: bin 440)."""

bin_counts = st.dictionaries(st.integers(0, BINS), st.integers(1, 2**40), max_size=40)
"""Sparse histograms: bin -> count, counts far beyond any window's."""


def packed(counts: dict[int, int]) -> int:
    return sum(histograms.of_bin(index, n) for index, n in counts.items())


def as_list(counts: dict[int, int]) -> list[int]:
    return [counts.get(index, 0) for index in range(max(counts, default=0) + 1)]


@given(bin_counts, bin_counts)
def test_adding_two_histograms_adds_their_bins(first, second):
    # Given two histograms as integers
    # When they are added as integers
    summed = packed(first) + packed(second)

    # Then each bin holds the sum of its two counts
    assert list(histograms.bin_counts(summed)) == as_list(Counter(first) + Counter(second))


@given(st.dictionaries(st.integers(0, BINS), st.integers(1, 50), max_size=40), st.integers(1, 2_100))
def test_the_nearest_rank_bin_is_the_bin_of_the_rank_th_smallest_value(counts, rank):
    # Given every value of the histogram, smallest first
    values = sorted(index for index, n in counts.items() for _ in range(n))

    # When the bin of a rank is asked
    found = histograms.nearest_rank_bin(histograms.cumulative_counts(packed(counts)), rank)

    # Then it is the bin of that value, or None past the last one
    assert found == (values[rank - 1] if rank <= len(values) else None)


@given(st.dictionaries(st.text(min_size=1, max_size=8), bin_counts.filter(bool) | st.integers(0, 2**63)))
def test_counts_written_as_text_read_back_the_same(raw):
    # Given counts where some values are histograms (one integer each) and others plain numbers
    counts = {key: packed(value) if isinstance(value, dict) else value for key, value in raw.items()}

    # When they are written as text and read back
    text = histograms.dumps_counts(counts)

    # Then every value is the same integer, and the text is JSON that any reader parses
    assert histograms.loads_counts(text) == counts
    assert set(json.loads(text)) == set(counts)


def test_a_country_histogram_is_written_in_as_few_bytes_per_count_as_its_largest_needs():
    # Given a histogram with counts in bins 250 to 252, the largest 300
    histogram = packed({250: 3, 251: 300, 252: 1})

    # When it is written as text
    text = json.loads(histograms.dumps_counts({"US/bins": histogram}))["US/bins"]

    # Then it starts at its first bin, takes two bytes per count, and holds only the three bins
    assert text == "250:2:03002c010100"
    assert histograms.decode(text) == histogram


def test_plain_counts_are_written_as_before():
    assert histograms.dumps_counts({"US": 3, "FI": 12, "~late": 1}) == '{"FI":12,"US":3,"~late":1}'


def test_a_country_durations_read_from_a_histogram_integer_or_from_one_key_per_bin_are_the_same():
    # Given three sessions of one country, 1 s, 1 s and 60 s, in a row of today's form and in the earlier one
    # (one key per bin, as rows written before the histogram became one integer)
    durations = [1_000, 1_000, 60_000]
    today = {
        "US": 3,
        "US/ms": sum(durations),
        "US/bins": sum(histograms.of_bin(bin_of(ms)) for ms in durations),
    }
    earlier = {"US": 3, "US/ms": sum(durations), f"US/{bin_of(1_000)}": 2, f"US/{bin_of(60_000)}": 1}

    # When each is read as the country's durations
    for counts in (today, earlier):
        us = durations_by_country(Counter(counts))["US"]

        # Then the count, mean and quantiles are the same
        assert (us.sessions, us.mean_ms) == (3, 62_000 / 3)
        assert us.quantile_ms(0.5) == bin_value(bin_of(1_000))
        assert us.quantile_ms(0.99) == bin_value(bin_of(60_000))


def test_a_figure_this_version_does_not_know_is_left_out():
    # Given a row with a figure a later version might add beside today's
    counts = {"US": 2, "US/ms": 4_000, "US/bins": 2 * histograms.of_bin(bin_of(2_000)), "US/p999": 7}

    # When it is read as the country's durations
    us = durations_by_country(Counter(counts))["US"]

    # Then the figures this version knows are read as without it
    assert (us.sessions, us.mean_ms, us.quantile_ms(0.5)) == (2, 2_000, bin_value(bin_of(2_000)))
