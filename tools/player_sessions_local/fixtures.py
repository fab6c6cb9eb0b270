"""(Re)writes the events/ fixtures: REST API proxy events as `sam local invoke -e` takes them.

    python -m player_sessions_local.fixtures [--output-dir events]

The events come from the local gateway's own event builder, with fixed ids and times, so running this again
gives byte-identical files and a fixture always looks exactly like what the gateway sends a function.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from player_sessions.routes import PLAYER_EVENTS_PATH, ROUTES, STUDIO_EVENTS_PATH, Caller
from player_sessions_local.gateway.routing import (
    HttpRequest,
    RequestStamp,
    build_proxy_event,
    extended_request_id,
    match_route,
)
from player_sessions_local.gateway.server import DEFAULT_PORT
from player_sessions_local.local_auth import Signer

EVENTS_DIRECTORY = Path(__file__).resolve().parents[2] / "events"
FIXTURE_API_KEY = "local-test-key"
FIXTURE_ACCESS_KEY = "AKIAFIXTURESTUDIO000"
RECEIVED_AT = datetime(2026, 11, 27, 10, 31, tzinfo=UTC)
"""After every timestamp in the fixtures' bodies, so none of them is in the future when invoked then."""
CLIENT_IP = "127.0.0.1"
USER_AGENT = "game-client/1.4.2 (Windows NT 10.0; Win64; x64)"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://player-sessions.local/events-fixtures")

SESSION_PK = "674606b1-2270-4285-928f-eef4a6b90a60"
PLAYER_PK = "d6313e1fb7d247a6a034e2aadc30ab3f"
SESSION_FI = "0b9e2a53-5c1c-4f7e-9d45-3a3a6f6b2c10"
PLAYER_FI = "6a0c3e8ce1f14a54b3f3a6f0d3b6e7a1"
SESSION_US = "8f14e45f-ceea-467f-a0e6-3c2d1b8e4f11"
PLAYER_US = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

VALID_BATCH = [
    {
        "player_id": PLAYER_PK,
        "country": "PK",
        "event": "start",
        "session_id": SESSION_PK,
        "ts": "2026-11-27T10:00:00Z",
    },
    {"player_id": PLAYER_PK, "event": "end", "session_id": SESSION_PK, "ts": "2026-11-27T10:30:00Z"},
    {
        "player_id": PLAYER_FI,
        "country": "fi",
        "event": "start",
        "session_id": SESSION_FI,
        "ts": "2026-11-27T11:15:30.250+02:00",
    },
    {"player_id": PLAYER_FI, "event": "end", "session_id": SESSION_FI, "ts": "2026-11-27T09:45:00Z"},
]
MIXED_BATCH = [
    {
        "player_id": PLAYER_US,
        "country": "US",
        "event": "start",
        "session_id": SESSION_US,
        "ts": "2026-11-27T10:05:00Z",
    },
    {
        "player_id": "bad player",
        "country": "DE",
        "event": "start",
        "session_id": "5a7c9e1b-3d5f-4a8c-b2e4-6f8a0c2e4b6d",
        "ts": "2026-11-27T10:06:00Z",
    },
    {
        "player_id": PLAYER_PK,
        "country": "PK",
        "event": "start",
        "session_id": "3c1d6f0e-8a2b-4e5f-9c7d-1b2a3e4f5a6b",
        "ts": "2016-11-22T20:40:50",
    },
    {"player_id": PLAYER_US, "event": "pause", "session_id": SESSION_US, "ts": "2026-11-27T10:10:00Z"},
]


@dataclass(frozen=True)
class Fixture:
    name: str
    method: str
    target: str
    """Path and query string, as on the request line."""
    body: str | None = None
    content_type: str | None = None


FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        "ingest_events_valid_batch", "POST", STUDIO_EVENTS_PATH, json.dumps(VALID_BATCH), "application/json"
    ),
    Fixture(
        "ingest_events_mixed_batch", "POST", STUDIO_EVENTS_PATH, json.dumps(MIXED_BATCH), "application/json"
    ),
    Fixture(
        "ingest_events_malformed_body", "POST", STUDIO_EVENTS_PATH, '{"event": "start"', "application/json"
    ),
    Fixture(
        "ingest_events_wrong_content_type",
        "POST",
        STUDIO_EVENTS_PATH,
        json.dumps(VALID_BATCH[:1]),
        "text/plain",
    ),
    # A game client signed in as PLAYER_PK: its own events are stored, PLAYER_FI's is rejected.
    Fixture(
        "ingest_events_player_batch",
        "POST",
        PLAYER_EVENTS_PATH,
        json.dumps(VALID_BATCH[:3]),
        "application/json",
    ),
    Fixture("player_sessions_query", "GET", f"/players/{PLAYER_PK}/sessions?limit=5"),
    Fixture("player_sessions_bad_limit", "GET", f"/players/{PLAYER_PK}/sessions?limit=99"),
    Fixture("health", "GET", "/health"),
    Fixture("country_starts_counts", "GET", "/countries/starts?hours=24"),
    Fixture("country_starts_page", "GET", "/countries/fi/starts?hours=24&limit=1"),
    Fixture("country_starts_bad_hours", "GET", "/countries/starts?hours=0"),
    Fixture("country_starts_online", "GET", "/countries/online"),
    Fixture("country_starts_session_lengths", "GET", "/countries/session-lengths?hours=24"),
    Fixture("player_data_export", "GET", f"/players/{PLAYER_PK}/export?limit=10"),
    Fixture("player_data_erasure", "POST", f"/players/{PLAYER_US}/erasure"),
    Fixture("player_data_unknown_receipt", "GET", f"/erasures/{uuid.uuid5(_NAMESPACE, 'no such erasure')}"),
)


def build_fixture_event(fixture: Fixture) -> dict[str, Any]:
    """The proxy event the local gateway would send for this request, with ids derived from its name."""
    target = urlsplit(fixture.target)
    match = match_route(ROUTES, fixture.method, target.path)
    if match is None or match.route is None:
        raise ValueError(f"fixture {fixture.name}: {fixture.method} {target.path} is not in the route table")
    request = HttpRequest(
        method=fixture.method,
        raw_path=target.path,
        query=target.query,
        headers=_client_headers(fixture),
        body=(fixture.body or "").encode("utf-8"),
        source_ip=CLIENT_IP,
    )
    return build_proxy_event(request, match, _stamp(fixture.name, match.route.caller))


def _client_headers(fixture: Fixture) -> list[tuple[str, str]]:
    """What a game client sends, then what the gateway adds on the way (trace id, forwarding headers)."""
    headers = [("Accept", "application/json"), ("Accept-Encoding", "gzip, deflate")]
    if fixture.body is not None:
        headers.append(("Content-Length", str(len(fixture.body.encode("utf-8")))))
    if fixture.content_type is not None:
        headers.append(("Content-Type", fixture.content_type))
    headers += [
        ("Host", f"127.0.0.1:{DEFAULT_PORT}"),
        ("User-Agent", USER_AGENT),
        ("x-api-key", FIXTURE_API_KEY),
        ("X-Amzn-Trace-Id", f"Root=1-{int(RECEIVED_AT.timestamp()):08x}-{_derived_hex(fixture.name, 24)}"),
        ("X-Forwarded-For", CLIENT_IP),
        ("X-Forwarded-Port", str(DEFAULT_PORT)),
        ("X-Forwarded-Proto", "http"),
    ]
    return headers


def _stamp(name: str, caller: Caller) -> RequestStamp:
    """With what API Gateway adds for the route's caller: the authorizer's context for a game client (signed
    in as PLAYER_PK), the signing identity for the studio or the administration."""
    signer = Signer.ADMIN if caller is Caller.ADMIN else Signer.STUDIO
    return RequestStamp(
        request_id=str(uuid.uuid5(_NAMESPACE, f"request/{name}")),
        extended_request_id=extended_request_id(uuid.uuid5(_NAMESPACE, f"extended/{name}").bytes),
        received_at=RECEIVED_AT,
        api_key=FIXTURE_API_KEY,
        authorizer={"player_id": PLAYER_PK, "principalId": PLAYER_PK} if caller is Caller.PLAYER else None,
        signer_arn=signer.user_arn if caller is not Caller.PLAYER else None,
        signer_access_key=FIXTURE_ACCESS_KEY if caller is not Caller.PLAYER else None,
    )


def _derived_hex(seed: str, length: int) -> str:
    return uuid.uuid5(_NAMESPACE, seed).hex[:length]


def render_fixture(fixture: Fixture) -> str:
    return json.dumps(build_fixture_event(fixture), indent=2, ensure_ascii=False) + "\n"


def write_fixtures(directory: Path) -> list[Path]:
    """Writes every fixture as ``<name>.json`` into the directory; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fixture in FIXTURES:
        path = directory / f"{fixture.name}.json"
        path.write_text(render_fixture(fixture), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.fixtures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output-dir", type=Path, default=EVENTS_DIRECTORY)
    arguments = parser.parse_args(argv)
    for path in write_fixtures(arguments.output_dir):
        print(path)


if __name__ == "__main__":
    main()
