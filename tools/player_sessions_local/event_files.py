"""Files of session events as JSON lines, plain or compressed by their suffix (.gz, .bz2): what the generator
writes and the loader reads."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from datetime import datetime
from pathlib import Path

from player_sessions.models import to_utc_millis


def open_for_reading(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def open_for_writing(path: Path) -> io.TextIOBase:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=3)
    if path.suffix == ".bz2":
        return bz2.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def newest_timestamp(path: Path) -> datetime | None:
    """The newest parseable ``ts`` in the file (the first pass of --rebase-to-now)."""
    newest: datetime | None = None
    with open_for_reading(path) as lines:
        for line in lines:
            try:
                ts = to_utc_millis(datetime.fromisoformat(json.loads(line)["ts"]))
            except (ValueError, KeyError, TypeError, OverflowError):
                continue
            newest = ts if newest is None or ts > newest else newest
    return newest
