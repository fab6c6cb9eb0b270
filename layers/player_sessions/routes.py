"""The route table: which Lambda function serves which method and path.

Defined once and used by both the CDK REST API (infra_cdk) and the local gateway
(player_sessions_local.gateway), so the two cannot disagree. Paths use API Gateway's ``{name}`` syntax.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: LambdaFunction


INGEST_EVENTS = LambdaFunction("ingest_events", "Ingest a batch of session events")
PLAYER_SESSIONS = LambdaFunction("player_sessions", "A player's last completed sessions, and service health")
COUNTRY_STARTS = LambdaFunction("country_starts", "Session starts per country over the last X hours")

FUNCTIONS: tuple[LambdaFunction, ...] = (INGEST_EVENTS, PLAYER_SESSIONS, COUNTRY_STARTS)
"""The functions behind the API's routes."""

ROLLUP_BUILDER = LambdaFunction(
    "rollup_builder", "Folds stored starts into the country rollups, on a schedule"
)
SCHEDULED_FUNCTIONS: tuple[LambdaFunction, ...] = (ROLLUP_BUILDER,)
"""Functions no route calls: EventBridge invokes them on a schedule."""

ROUTES: tuple[Route, ...] = (
    Route("POST", "/events", INGEST_EVENTS),
    Route("GET", "/players/{player_id}/sessions", PLAYER_SESSIONS),
    Route("GET", "/health", PLAYER_SESSIONS),
    Route("GET", "/countries/starts", COUNTRY_STARTS),
    Route("GET", "/countries/{country}/starts", COUNTRY_STARTS),
)
