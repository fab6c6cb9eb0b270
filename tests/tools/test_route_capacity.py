"""Each route's open-model capacity, served against in-process (route_capacity): what a search tries on each
gateway, what fails a rate, and how the SPEC.md target is judged."""

from __future__ import annotations

from player_sessions_local import route_capacity
from player_sessions_local.measure import open_model
from player_sessions_local.route_capacity import RouteCapacity, capacity_section, capacity_target


def test_each_gateway_is_warmed_then_searched_and_one_refusal_fails_a_rate(monkeypatch):
    # Given a pool that refuses one request at 50 requests/s and more, and an in-process gateway that holds 75
    order: list[object] = []

    def run(url, mix, *, rate, seconds, seed, api_key=None):
        order.append((url, rate))
        result = open_model.RateResult(rate, seconds, {mix[0].route: open_model.Latencies([5.0])}, sent=100)
        if (url == "pool" and rate >= 50) or (url == "one" and rate > 75):
            if url == "pool":
                result.refused.latencies_ms.append(51.0)
            else:
                result.admitted[mix[0].route].latencies_ms[:] = [900.0]
        return result

    monkeypatch.setattr(open_model, "run_open_model", run)
    # When one route is searched on both
    found = route_capacity.measure_capacities(
        {"pool": "pool", "in process": "one"},
        [("GET /players", lambda rng: ("GET", "/players", None), None)],
        seconds=1.0,
        api_key="k",
        seed=1,
        say=lambda _: None,
        warm=lambda route, mode: order.append(("warm", mode)),
    )
    # Then each search began with its warm-up, and the pool's capacity stops below its first refusal (35 held, 50 failed, 42.5 and 46.2 held)
    assert order[0] == ("warm", "pool")
    assert order.index(("warm", "in process")) > order.index(("pool", 50.0))
    assert [(item.mode, item.capacity) for item in found] == [("pool", 46.2), ("in process", 75.0)]


def test_the_target_needs_every_route_at_least_seven_tenths_of_the_reference():
    def pair(route: str, served: float, reference: float) -> list[RouteCapacity]:
        return [RouteCapacity(route, "pool", served, []), RouteCapacity(route, "in process", reference, [])]

    held = pair("a", 70.0, 100.0) + pair("b", 300.0, 100.0)
    assert capacity_target(held, "pool", "in process").endswith("met (ratios 0.70 to 3.00)")
    short = held + pair("c", 69.0, 100.0)
    assert ": missed (ratios 0.69 to 3.00)" in capacity_target(short, "pool", "in process")
    # A reference that held nothing leaves the ratio unknown: not met
    unknown = held + pair("d", 5.0, 0.0)
    assert ": missed" in capacity_target(unknown, "pool", "in process")
    # A reference that held the highest rate tried is a lower bound, so the ratio is an upper bound
    table = capacity_section(pair("e", 200.0, route_capacity.RATES[-1]), "pool", "in process", 5.0)
    assert table[-1] == "| `e` | 200 | >= 400 | <= 0.50 |"
