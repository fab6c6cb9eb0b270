"""The rollup builders in a process of their own (what `make serve` and the benchmark run beside the gateway):
they fold what is stored, under the builder's own login, stop when told, and never outlive their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from player_sessions.bootstrap import build_services
from player_sessions.clock import FixedClock, SystemClock
from player_sessions.domain.country_starts.window import read_tail
from player_sessions.domain.ingest import ingest_batch
from player_sessions.routes import ROLLUP_BUILDER
from player_sessions.settings import Settings
from player_sessions.time_buckets import slot_of
from player_sessions_local.builder_process import STOP_TIMEOUT_SECONDS, BuilderProcess, settings_json
from player_sessions_local.cassandra_roles import as_function

pytestmark = pytest.mark.integration

FOLD_DEADLINE_SECONDS = 60.0
PARENT_SCRIPT = "\n".join(
    [
        "import json, sys, time",
        "from player_sessions.settings import Settings",
        "from player_sessions_local.builder_process import BuilderProcess",
        "builders = BuilderProcess.start(Settings.model_validate(json.loads(sys.stdin.readline())))",
        "print(builders.process.pid, flush=True)",
        "time.sleep(600)",
    ]
)


def test_the_settings_reach_the_builder_process_as_given_secrets_included():
    settings = Settings(
        keyspace="some_keyspace",
        rollup_parts=2,
        cursor_signing_key=SecretStr("cursor-key"),
        player_hash_key=SecretStr("hash-key"),
        api_key=None,
    )
    assert Settings.model_validate(json.loads(settings_json(settings))) == settings


def test_the_builder_process_folds_every_stored_start_prints_nothing_and_stops_when_told(
    counts_settings, counts_connection, counts_stores
):
    # Given starts of the last minute stored as ingest stores them (the counts keyspace, emptied), one in each
    # of 60 past arrival seconds: a part's first run folds some 15 slots, well over the 100 statements after
    # which Powertools prints its metrics by itself
    settings = counts_settings.model_copy(update={"cache_enabled": False})
    services = build_services(settings, SystemClock(), counts_connection)
    now = datetime.now(UTC)
    clock = FixedClock(now - timedelta(seconds=70))
    events = []
    for n in range(60):
        clock.advance(seconds=1)
        event = {
            "event": "start",
            "player_id": f"player{n}",
            "session_id": str(uuid.uuid4()),
            "country": ("US", "FI", "BR")[n % 3],
            "ts": (clock.now() - timedelta(seconds=1)).isoformat(),
        }
        assert ingest_batch([event], store=services.sessions, clock=clock, settings=services.settings).stored
        events.append(event)
    stored_in = slot_of(datetime.now(UTC))
    # When the builders run in a process of their own, logged in as the builder's role
    builders = BuilderProcess.start(as_function(ROLLUP_BUILDER, settings), stdout=subprocess.PIPE)
    try:
        # Then every part's watermark passes the slots the starts were stored in, and the present one
        deadline = time.monotonic() + FOLD_DEADLINE_SECONDS
        parts = settings.partition.all_parts
        while True:
            watermarks = services.starts.read_progress(parts)
            if len(watermarks) == len(parts) and min(watermarks.values()) >= stored_in:
                break
            assert builders.process.poll() is None, "the builder process exited"
            assert time.monotonic() < deadline, f"not folded within {FOLD_DEADLINE_SECONDS:g} s: {watermarks}"
            time.sleep(0.25)
        # And the rollups hold each country's starts: none is left in the tail a reader counts itself
        ours = {uuid.UUID(event["session_id"]) for event in events}
        tail = read_tail(services.starts, datetime.now(UTC), settings.partition)
        assert not ours & {arrival.key.session_id for arrival in tail.arrivals}
        counts = services.country_starts.counts(1)
        assert counts.folded_through is not None and counts.folded_through > now
        assert dict(counts.counts) == {"US": 20, "FI": 20, "BR": 20}
    finally:
        started = time.monotonic()
        builders.stop()
    # And told to stop, it finished its runs and exited cleanly, in time, having printed nothing (no EMF blob
    # of the service's metrics in the terminal of `make serve` or the benchmark's console)
    assert builders.process.returncode == 0
    assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
    assert builders.process.stdout is not None
    assert builders.process.stdout.read() == b""


def test_the_builder_process_does_not_outlive_its_parent(test_settings):
    # Given a parent process that started the builders, then lost (SIGKILL: no chance to stop them)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PARENT_SCRIPT,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    parent.stdin.write(settings_json(test_settings) + "\n")
    parent.stdin.flush()
    child = int(parent.stdout.readline())
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    # Then the builders go too
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS + 5
    while _alive(child):
        assert time.monotonic() < deadline, "the builder process outlived its parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (gone) parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
