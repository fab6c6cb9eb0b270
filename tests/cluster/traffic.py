"""Sustained traffic against the served API for the cluster tests: writers that post one session's start and the
previous session's end in each batch (so sessions span two requests, some of them across a fault), and a reader
of the player history and the metric. Every answer that is not a 200 is kept as a failure."""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.conftest import ServedApi


@dataclass
class Session:
    player: str
    session_id: str
    country: str
    start_ts: str
    end_ts: str
    start_acknowledged_at: float | None = None
    end_acknowledged_at: float | None = None

    @property
    def end_acknowledged(self) -> bool:
        return self.end_acknowledged_at is not None

    def across(self, moment: float) -> bool:
        """Started (acknowledged) before ``moment``, ended (acknowledged) after it."""
        return (self.start_acknowledged_at or moment) < moment < (self.end_acknowledged_at or moment)

    def start(self) -> dict:
        return {
            "event": "start",
            "player_id": self.player,
            "session_id": self.session_id,
            "country": self.country,
            "ts": self.start_ts,
        }

    def end(self) -> dict:
        return {"event": "end", "player_id": self.player, "session_id": self.session_id, "ts": self.end_ts}


PAUSE_SECONDS = 0.05
"""Between two requests of one client: steady traffic that leaves the two cores some room. Saturated (three JVMs,
the gateway and its environments on two cores), the nodes paused for 6 to 8 s ("local pause" in their logs) and
requests timed out with or without a fault."""


CLIENT_TIMEOUT_SECONDS = 35.0
"""How long the writers and the reader wait for an answer: past the gateway's 29 s, after which it answers 504
itself, so that a failure is the service's answer (or its silence), not the client's impatience. A full CI run
once saw a read before any fault take more than 15 s (the earlier limit) on the three JVMs and two cores."""


@dataclass
class Traffic:
    api: ServedApi
    country: str
    writers: int = 3
    sessions: dict[str, list[Session]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)
    """When each acknowledged batch was answered."""
    reads: int = 0
    read_paths_answered: set[str] = field(default_factory=set)
    """The reader's routes that have answered once (either answer): their environments are warm."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count = field(default_factory=itertools.count)

    def __enter__(self) -> Traffic:
        for number in range(self.writers):
            player = f"cluster-{self.country}-{number}-{uuid.uuid4().hex[:8]}"
            self.sessions[player] = []
            self._threads.append(threading.Thread(target=self._write, args=(player,), daemon=True))
        self._threads.append(threading.Thread(target=self._read, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _new_session(self, player: str) -> Session:
        # Minutes in the past, one millisecond apart per session: every end is newer than the one before.
        offset = timedelta(milliseconds=next(self._counter))
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30) + offset
        return Session(
            player,
            str(uuid.uuid4()),
            self.country,
            start.isoformat(),
            (start + timedelta(minutes=20)).isoformat(),
        )

    def _write(self, player: str) -> None:
        previous: Session | None = None
        with self.api.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                current = self._new_session(player)
                batch = [current.start()] + ([previous.end()] if previous else [])
                if not self._post(client, batch):
                    return
                current.start_acknowledged_at = time.monotonic()
                if previous:
                    previous.end_acknowledged_at = current.start_acknowledged_at
                with self._lock:
                    self.sessions[player].append(current)
                    self.posts.append(time.monotonic())
                previous = current
                self._stop.wait(PAUSE_SECONDS)

    def _post(self, client: httpx.Client, batch: list[dict]) -> bool:
        """Posts until the batch is stored, as a client told to retry would; every refusal is a failure."""
        for _ in range(20):
            try:
                response = client.post("/studio/events", json=batch)
            except httpx.HTTPError as error:
                self._fail(f"POST /events: {type(error).__name__}")
                continue
            if response.status_code == 200 and response.json()["stored"] == len(batch):
                return True
            self._fail(f"POST /events: {response.status_code} {response.text[:200]}")
            time.sleep(0.2)
        return False

    def _read(self) -> None:
        with self.api.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                players = list(self.sessions)
                for path in (f"/players/{random.choice(players)}/sessions", "/countries/starts?hours=1"):
                    try:
                        response = client.get(path)
                    except httpx.HTTPError as error:
                        self._fail(f"GET {path}: {type(error).__name__}")
                        continue
                    if response.status_code != 200:
                        self._fail(f"GET {path}: {response.status_code} {response.text[:200]}")
                    self.reads += 1
                    self.read_paths_answered.add(path.split("/")[1])
                    self._stop.wait(PAUSE_SECONDS)

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(f"{time.monotonic():.2f} {what}")

    def wait_until_flowing(self, batches_per_writer: int = 2, timeout: float = 60.0) -> None:
        """Until every writer's batches are being acknowledged and both of the reader's routes have answered:
        the environments' cold starts (6 to 9 s each under this tier's load) are behind, and the reads measured
        across a fault are warm ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.read_paths_answered) == 2 and all(
                    sum(s.start_acknowledged_at is not None for s in sessions) >= batches_per_writer
                    for sessions in self.sessions.values()
                ):
                    return
            time.sleep(0.1)
        raise AssertionError(
            f"the writers' batches were not acknowledged, or the reads not answered, within {timeout:g} s: "
            f"{self.failures}"
        )

    def completed(self, player: str) -> list[Session]:
        return [s for s in self.sessions[player] if s.end_acknowledged]

    def started(self) -> int:
        return sum(len(sessions) for sessions in self.sessions.values())
