"""The one thread that ends invocations past their deadline (gateway.deadlines)."""

from __future__ import annotations

import threading
import time

from player_sessions_local.gateway.deadlines import WATCH_INTERVAL_SECONDS, WATCHER

GENEROUS_SECONDS = 100 * WATCH_INTERVAL_SECONDS


def test_an_invocation_past_its_deadline_is_ended_and_marked_fired():
    ended = threading.Event()
    watch = WATCHER.watch(lambda: time.monotonic() - 1, ended.set)

    assert ended.wait(GENEROUS_SECONDS)
    watch.finished()
    assert watch.fired


def test_a_finished_invocation_is_never_ended_and_one_without_a_deadline_yet_waits():
    ended = threading.Event()
    deadline: list[float | None] = [None]
    finished = WATCHER.watch(lambda: time.monotonic() - 1, ended.set)
    finished.finished()
    pending = WATCHER.watch(lambda: deadline[0], ended.set)

    # A few rounds of the watcher: neither is ended (one finished, the other has no deadline yet: init runs)
    assert not ended.wait(5 * WATCH_INTERVAL_SECONDS)
    assert not finished.fired and not pending.fired

    # Once its deadline is known and past, the pending one is ended
    deadline[0] = time.monotonic()
    assert ended.wait(GENEROUS_SECONDS)
    pending.finished()
    assert pending.fired
