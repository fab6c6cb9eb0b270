"""The open-model capacity search (measure.open_model.search_capacity): which rates it tries, and what it calls
the capacity, against a served path that holds every rate up to a known limit."""

from __future__ import annotations

import pytest

from player_sessions_local.bench.capacity import RATES
from player_sessions_local.measure import open_model
from player_sessions_local.measure.open_model import search_capacity


def search(limit: float, rates=RATES) -> tuple[float, list[float]]:
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return rate <= limit

    return search_capacity(rates, holds), tried


def test_it_steps_up_to_the_first_rate_that_fails_then_tries_halfway_back():
    # Given a served path that holds up to 90 requests/s
    capacity, tried = search(90.0)
    # Then it stepped 40, 60, 80, failed at 100, and held halfway (90)
    assert tried == [40.0, 60.0, 80.0, 100.0, 90.0]
    assert capacity == 90.0


def test_a_host_slower_than_the_first_rate_is_searched_downwards_not_reported_as_zero():
    # Given a slow host that holds up to 12 requests/s, below the first rate (40)
    capacity, tried = search(12.0)
    # Then it halved to 20 (failed) and 10 (held), then held nothing at 15 and says 10
    assert tried == [40.0, 20.0, 10.0, 15.0]
    assert capacity == 10.0


def test_every_rate_held_is_the_highest_rate_and_nothing_held_is_zero():
    assert search(1_000.0)[0] == RATES[-1]
    capacity, tried = search(1.0)
    assert capacity == 0.0
    assert tried == [40.0, 20.0, 10.0, 5.0, 2.5]


@pytest.mark.parametrize("limit", [3.0, 7.5, 25.0, 45.0, 70.0, 130.0, 199.0])
def test_the_capacity_found_holds_and_is_within_a_step_of_the_limit(limit):
    capacity, _ = search(limit)
    assert 0 < capacity <= limit
    assert capacity >= limit / 2


def test_the_open_models_mix_takes_only_requests_signed_as_the_studio():
    # Given the latency phase's plans: the studio's ingest and reads, and game clients' token plans
    import random

    from player_sessions_local.bench.capacity import mix_of
    from player_sessions_local.bench.latency import RoutePlan, fresh_tokens

    def plan(name: str, kind: str, *, token: bool = False) -> RoutePlan:
        return RoutePlan(
            name, kind, "on", None, lambda _rng: ("POST", name, None), fresh_tokens() if token else None
        )  # type: ignore[arg-type]

    plans = [
        plan("/studio/events", "ingest"),
        plan("/events", "ingest", token=True),
        plan("/players", "players"),
    ]
    # When the capacity search's mix is made of them
    mix = {entry.route: entry for entry in mix_of(plans)}
    # Then its ingest requests are the studio's only (its senders sign every request; a token plan would be 401)
    rng = random.Random(1)
    assert {mix["ingest"].make_request(rng)[1] for _ in range(50)} == {"/studio/events"}


def test_every_rate_starts_after_the_settle_step(monkeypatch):
    # Given a served path that holds up to 12 requests/s, and a settle step (the bench folds the arrivals)
    order: list[object] = []

    def run(url, mix, *, rate, seconds, seed, api_key=None):
        order.append(rate)
        server_errors = 0 if rate <= 12.0 else 1
        return open_model.RateResult(rate, seconds, server_errors=server_errors, sent=1)

    monkeypatch.setattr(open_model, "run_open_model", run)
    # When the capacity is searched
    capacity, results = open_model.find_capacity(
        "http://unused",
        [],
        RATES,
        seconds=1.0,
        p90_limit_ms=500.0,
        seed=1,
        settle=lambda: order.append("settle"),
    )
    # Then the settle step ran before each rate tried, and the rates' results are what the search judged
    assert order == ["settle", 40.0, "settle", 20.0, "settle", 10.0, "settle", 15.0]
    assert (capacity, [result.rate for result in results]) == (10.0, [40.0, 20.0, 10.0, 15.0])


def test_each_refinement_narrows_the_pair_between_the_last_rate_held_and_the_first_failed():
    # Given a served path that holds up to 92 requests/s, searched with three tries between 80 and 100
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return rate <= 92.0

    capacity = search_capacity(RATES, holds, refinements=3)
    # Then it held 90, failed 95, failed 92.5: the capacity is 90, within 2.5 of the limit
    assert tried == [40.0, 60.0, 80.0, 100.0, 90.0, 95.0, 92.5]
    assert capacity == 90.0


def test_a_rate_with_one_refusal_does_not_hold_when_nothing_may_be_refused():
    # Given a rate of 200 requests whose answers were all fast but one was refused (429)
    result = open_model.RateResult(20.0, 10.0, sent=200)
    result.refused.latencies_ms.append(3.0)
    # Then it holds with the open model's 1% allowance, not under a rule of no error at all
    assert result.holds(500.0)
    assert not result.holds(500.0, refused_at_most=0.0)
