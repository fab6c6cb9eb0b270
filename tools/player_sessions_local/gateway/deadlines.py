"""Invocation deadlines: one thread looks at every invocation in flight every WATCH_INTERVAL_SECONDS and ends
those past their deadline, instead of a thread started for each invocation on the request's path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WATCH_INTERVAL_SECONDS = 0.05
"""An invocation past its deadline is ended within this much of it."""


class Watch:
    """One invocation's deadline, from ``deadline()`` (None: none to enforce yet); ``on_late`` ends it."""

    def __init__(self, deadline: Callable[[], float | None], on_late: Callable[[], None]) -> None:
        self._deadline = deadline
        self.on_late = on_late
        self._done = False
        self._lock = threading.Lock()
        self.fired = False
        """Final once ``finished`` has returned."""

    def finished(self) -> None:
        with self._lock:
            self._done = True
        WATCHER.forget(self)

    def fire_if_late(self, now: float) -> bool:
        """Whether the invocation, still running, is past its deadline (then ``fired``)."""
        deadline = self._deadline()
        if deadline is None or now < deadline:
            return False
        with self._lock:
            if self._done:
                return False
            self.fired = True
        return True


class DeadlineWatcher:
    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Callable[[], float | None], on_late: Callable[[], None]) -> Watch:
        watch = Watch(deadline, on_late)
        with self._lock:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="invocation-deadlines", daemon=True)
                self._thread.start()
        return watch

    def forget(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_SECONDS)
            with self._lock:
                watches = list(self._watches)
            now = time.monotonic()
            for watch in watches:
                if watch.fire_if_late(now):
                    self.forget(watch)
                    watch.on_late()


WATCHER = DeadlineWatcher()
