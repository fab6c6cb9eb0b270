"""POST /events: ingest a batch of session events."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from player_sessions.bootstrap import ServicesDependency
from player_sessions.domain.ingest import BatchOutcome, ingest_batch
from player_sessions.http import ERROR_RESPONSES, build_resolver, documented, model_response, read_json_batch
from player_sessions.models import ErrorOut, EventError, IngestResult
from player_sessions.observability import MetricUnit, logger, metrics, tracer

app = build_resolver()


@app.post(
    "/events",
    summary="Ingest a batch of session events",
    description="Each event is validated on its own; valid events are stored even when others are not. "
    "The answer comes after Cassandra acknowledged every write at LOCAL_QUORUM.",
    responses={
        200: documented("Every event stored or discarded", IngestResult),
        207: documented("Some events rejected, others stored or discarded", IngestResult),
        **ERROR_RESPONSES,
        400: documented(
            "Every event rejected (the ingest result, a reason per event), or the body is not a JSON array of "
            "events (`message` and `errors`)",
            IngestResult | ErrorOut,
        ),
    },
    tags=["events"],
)
@tracer.capture_method(capture_response=False)
def ingest_events(services: ServicesDependency) -> Response[IngestResult]:
    items = read_json_batch(app.current_event, services.settings)
    outcome = ingest_batch(
        items, store=services.sessions, clock=services.clock, settings=services.settings, cache=services.cache
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
    return model_response(_status_for(outcome, len(items)), result)


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
