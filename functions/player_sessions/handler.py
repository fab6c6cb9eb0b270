"""GET /players/{player_id}/sessions (a player's last completed sessions) and GET /health."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from player_sessions.bootstrap import ServicesDependency
from player_sessions.domain.health import check_health
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.http import ERROR_RESPONSES, build_resolver, documented, model_response, read_responses
from player_sessions.models import (
    CompletedSessionOut,
    HealthOut,
    PlayerSessionsOut,
    format_timestamp,
)
from player_sessions.models.fields import PLAYER_ID_REGEX, PLAYER_ID_RULE, WHOLE_NUMBER
from player_sessions.observability import MetricUnit, logger, metrics, tracer

app = build_resolver()

MAX_SESSIONS = 20


@app.get(
    "/players/<player_id>/sessions",
    summary="A player's last completed sessions",
    description="The player's most recently completed sessions (both start and end stored), newest end first. "
    "An unknown player has none.",
    responses=read_responses("The sessions", PlayerSessionsOut),
    tags=["players"],
)
@tracer.capture_method(capture_response=False)
def player_sessions(
    player_id: Annotated[
        str,
        Path(pattern=PLAYER_ID_REGEX, description=PLAYER_ID_RULE),
    ],
    limit: Annotated[
        int, Query(description="How many sessions, 1 to 20"), Field(ge=1, le=MAX_SESSIONS), WHOLE_NUMBER
    ] = MAX_SESSIONS,
    *,
    services: ServicesDependency,
) -> PlayerSessionsOut:
    # The player id is personal data, erased on request, while logs are kept a year: it is not logged.
    sessions = last_completed_sessions(
        player_id,
        limit,
        store=services.sessions,
        clock=services.clock,
        settings=services.settings,
        cache=services.cache,
    )
    metrics.add_metric(name="PlayerSessionsReturned", unit=MetricUnit.Count, value=len(sessions))
    return PlayerSessionsOut(
        player_id=player_id,
        sessions=[
            CompletedSessionOut(
                session_id=session.session_id,
                country=session.country,
                start_ts=format_timestamp(session.start_ts),
                end_ts=format_timestamp(session.end_ts),
                duration_seconds=session.duration_seconds,
            )
            for session in sessions
        ],
    )


@app.get(
    "/health",
    summary="State of Cassandra and the cache",
    responses={
        200: documented("Cassandra answers", HealthOut),
        403: ERROR_RESPONSES[403],
        503: documented("Cassandra is down", HealthOut),
    },
    tags=["operations"],
)
@tracer.capture_method(capture_response=False)
def health(services: ServicesDependency) -> Response[HealthOut]:
    report = check_health(store=services.sessions, cache=services.cache)
    if report.status == "unavailable":
        return model_response(503, report, {"Retry-After": str(DatabaseUnavailableError.retry_after_seconds)})
    return model_response(200, report)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
