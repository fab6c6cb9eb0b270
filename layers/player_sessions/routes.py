"""The route table: which Lambda function serves which method and path.

Defined once and used by both the CDK REST API (infra_cdk) and the local gateway
(player_sessions_local.gateway), so the two cannot disagree. Paths use API Gateway's ``{name}`` syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class LambdaFunction:
    name: str
    """Folder under functions/ and the function's logical name."""
    description: str

    @property
    def handler_module(self) -> str:
        """Import path of the handler module when the repository root is on sys.path."""
        return f"functions.{self.name}.handler"

    @property
    def lambda_handler(self) -> str:
        """The Lambda runtime's handler setting (the function's folder is the code root)."""
        return "handler.lambda_handler"


class Caller(StrEnum):
    """Who may call a route, and the proof of identity it presents (docs/security.md)."""

    PLAYER = "player"
    """A game client: a short-lived token of the studio's login (a JWT whose subject is the player), checked by
    the authorizer function. Such a caller sends its own player's events only."""
    STUDIO = "studio"
    """The studio's servers and dashboards: requests signed with AWS credentials (SigV4), checked by IAM."""
    ADMIN = "admin"
    """Administration: signed as the studio's are, under an IAM policy of its own."""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: LambdaFunction
    caller: Caller


INGEST_EVENTS = LambdaFunction("ingest_events", "Ingest a batch of session events")
PLAYER_SESSIONS = LambdaFunction("player_sessions", "A player's last completed sessions, and service health")
COUNTRY_STARTS = LambdaFunction(
    "country_starts", "Session starts per country over the last X hours, sessions online, session lengths"
)
PLAYER_DATA = LambdaFunction("player_data", "A player's data on request: erasure, its receipts, export")

FUNCTIONS: tuple[LambdaFunction, ...] = (INGEST_EVENTS, PLAYER_SESSIONS, COUNTRY_STARTS, PLAYER_DATA)
"""The functions behind the API's routes."""

ROLLUP_BUILDER = LambdaFunction(
    "rollup_builder", "Folds stored starts and session records into the rollups, on a schedule"
)
SCHEDULED_FUNCTIONS: tuple[LambdaFunction, ...] = (ROLLUP_BUILDER,)
"""Functions no route calls: EventBridge invokes them on a schedule."""

AUTHORIZER = LambdaFunction("authorizer", "Checks a game client's player token before POST /events")
"""API Gateway calls it, before the integration, for every route whose caller is ``Caller.PLAYER``."""
AUTHORIZER_CACHE_SECONDS = 60
"""How long API Gateway keeps the authorizer's answer for one token: a revoked login is refused within this."""

PLAYER_EVENTS_PATH = "/events"
STUDIO_EVENTS_PATH = "/studio/events"
"""The same ingest for the studio's servers, signed, for any player: a REST API method has one kind of
authorization, so the two callers of ingest have a resource each."""

ROUTES: tuple[Route, ...] = (
    Route("POST", PLAYER_EVENTS_PATH, INGEST_EVENTS, Caller.PLAYER),
    Route("POST", STUDIO_EVENTS_PATH, INGEST_EVENTS, Caller.STUDIO),
    Route("GET", "/players/{player_id}/sessions", PLAYER_SESSIONS, Caller.STUDIO),
    Route("GET", "/health", PLAYER_SESSIONS, Caller.STUDIO),
    Route("GET", "/countries/starts", COUNTRY_STARTS, Caller.STUDIO),
    Route("GET", "/countries/{country}/starts", COUNTRY_STARTS, Caller.STUDIO),
    Route("GET", "/countries/online", COUNTRY_STARTS, Caller.STUDIO),
    Route("GET", "/countries/session-lengths", COUNTRY_STARTS, Caller.STUDIO),
    Route("POST", "/players/{player_id}/erasure", PLAYER_DATA, Caller.ADMIN),
    Route("GET", "/erasures/{erasure_id}", PLAYER_DATA, Caller.ADMIN),
    Route("GET", "/players/{player_id}/export", PLAYER_DATA, Caller.ADMIN),
)
