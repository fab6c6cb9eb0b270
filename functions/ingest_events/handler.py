"""POST /events (a game client, its own player's events) and POST /studio/events (the studio's servers, any
player): ingest a batch of session events."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from player_sessions.bootstrap import Services, ServicesDependency
from player_sessions.domain.ingest import BatchOutcome, ingest_batch
from player_sessions.http import ERROR_RESPONSES, build_resolver, documented, model_response, read_json_batch
from player_sessions.models import ErrorOut, EventError, IngestResult, RejectedBatchOut
from player_sessions.observability import MetricUnit, logger, metrics, tracer
from player_sessions.routes import PLAYER_EVENTS_PATH, STUDIO_EVENTS_PATH
from player_sessions.settings import get_settings

# A cold start without the player hash key's secret fails here (Keyspaces mode), rather than index players
# under the public development key.
get_settings().player_hash("")

app = build_resolver()


INGEST_RESPONSES: dict[int, Any] = {
    200: documented("Every event stored or discarded", IngestResult),
    207: documented("Some events rejected, others stored or discarded", IngestResult),
    **ERROR_RESPONSES,
    400: documented(
        "Every event rejected (the ingest result, a reason per event), or the body is not a JSON array of "
        "events (`message` and `errors`)",
        RejectedBatchOut | ErrorOut,
    ),
}
ONE_BY_ONE = (
    "Each event is validated on its own; valid events are stored even when others are not. A session is one "
    "player's and starts and ends once: an event that contradicts what is stored of its session is rejected "
    "(an exact re-send is harmless). The answer comes after Cassandra acknowledged every write at LOCAL_QUORUM."
)


@app.post(
    PLAYER_EVENTS_PATH,
    summary="Ingest a batch of a game client's session events",
    description=f"{ONE_BY_ONE} A game client presents its player's token (`Authorization: Bearer`); an event "
    "for another player is rejected.",
    responses={
        **INGEST_RESPONSES,
        401: documented("No valid player token: missing, expired, or not from the studio's login", ErrorOut),
    },
    tags=["events"],
)
@tracer.capture_method(capture_response=False)
def ingest_player_events(services: ServicesDependency) -> Response[IngestResult | RejectedBatchOut]:
    # Set by the authorizer (API Gateway, or the local gateway as it): the player the token proves.
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    return _ingest(services, authorizer.get("player_id"))


@app.post(
    STUDIO_EVENTS_PATH,
    summary="Ingest a batch of session events for any player (the studio's servers)",
    description=f"{ONE_BY_ONE} Signed with the studio's AWS credentials (SigV4).",
    responses=INGEST_RESPONSES,
    tags=["events"],
)
@tracer.capture_method(capture_response=False)
def ingest_studio_events(services: ServicesDependency) -> Response[IngestResult | RejectedBatchOut]:
    return _ingest(services, None)


def _ingest(services: Services, signed_in_player: str | None) -> Response[IngestResult | RejectedBatchOut]:
    items = read_json_batch(app.current_event, services.settings)
    outcome = ingest_batch(
        items,
        store=services.sessions,
        clock=services.clock,
        settings=services.settings,
        cache=services.cache,
        signed_in_player=signed_in_player,
        counted=services.starts,
    )
    _record_metrics(outcome)
    result = IngestResult(
        stored=outcome.stored,
        discarded=outcome.discarded,
        rejected=outcome.rejected,
        errors=[
            EventError(index=problem.index, status=problem.status, field=problem.field, reason=problem.reason)
            for problem in outcome.problems
        ],
    )
    status = _status_for(outcome, len(items))
    if status == 400:
        fields = sorted({problem.field for problem in outcome.problems})
        message = f"every event of the batch was rejected (fields: {', '.join(fields)}); see errors"
        return model_response(status, RejectedBatchOut(**result.model_dump(), message=message))
    return model_response(status, result)


def _status_for(outcome: BatchOutcome, batch_size: int) -> int:
    if outcome.rejected == 0:
        return 200
    return 400 if outcome.rejected == batch_size else 207


def _record_metrics(outcome: BatchOutcome) -> None:
    metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=outcome.stored)
    metrics.add_metric(name="EventsDiscarded", unit=MetricUnit.Count, value=outcome.discarded)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=outcome.rejected)
    metrics.add_metric(name="SessionsCompleted", unit=MetricUnit.Count, value=outcome.completed_sessions)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
