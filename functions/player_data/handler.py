"""A player's data on request: POST /players/{player_id}/erasure, GET /erasures/{erasure_id},
GET /players/{player_id}/export (administration)."""

from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from player_sessions.bootstrap import Services, ServicesDependency
from player_sessions.domain.privacy import (
    ExportedSession,
    NotAnExportCursorError,
    erase_player,
    export_cursor,
    export_player,
    export_position,
)
from player_sessions.errors import BadRequestError, NotFoundError
from player_sessions.http import ERROR_RESPONSES, build_resolver, documented, model_response, read_responses
from player_sessions.models import (
    CacheRemoved,
    CassandraRemoved,
    ErasureReceipt,
    ErasureReceiptOut,
    ErasureStores,
    ErrorOut,
    ExportedEvent,
    ExportedSessionOut,
    PlayerExportOut,
    WriteKind,
    format_timestamp,
)
from player_sessions.models.fields import PLAYER_ID_REGEX, PLAYER_ID_RULE, WHOLE_NUMBER
from player_sessions.observability import MetricUnit, logger, metrics, tracer
from player_sessions.repositories.protocols import PlayerDataStore
from player_sessions.settings import Settings, get_settings
from player_sessions.time_buckets import slot_start

# A cold start without the player hash key's secret fails here (Keyspaces mode), rather than hash with the
# public development key.
get_settings().player_hash("")

app = build_resolver()

PlayerId = Annotated[str, Path(pattern=PLAYER_ID_REGEX, description=PLAYER_ID_RULE)]
EXPORT_PAGE_MAX = 1000


@app.post(
    "/players/<player_id>/erasure",
    summary="Erase a player's data for good",
    description="Deletes every row and cache entry that holds the player's id (their sessions, completed "
    "sessions and index: history and export are empty at once), and from now on discards the player's events "
    "stamped before this moment (a replay never brings them back). The counts (starts, sessions online, session "
    "lengths) keep the player's sessions: the rows they are counted from keep each session's id, time, country "
    "and length, without the player, so no listing shows them again and no row names the player. Answers 202 "
    "with the receipt; erasing again is harmless, and completes an erasure that was interrupted.",
    responses={
        202: documented("The erasure's receipt (status says whether it finished)", ErasureReceiptOut),
        **{status: ERROR_RESPONSES[status] for status in (400, 403, 503)},
    },
    tags=["privacy"],
)
@tracer.capture_method(capture_response=False)
def erase(player_id: PlayerId, *, services: ServicesDependency) -> Response[ErasureReceiptOut]:
    context = app.lambda_context
    receipt = erase_player(
        player_id,
        store=_store(services),
        cache=services.cache,
        clock=services.clock,
        settings=services.settings,
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000 if context else float("inf"),
    )
    logger.info(
        "player erased" if receipt.finished else "player erasure stopped half way",
        extra={"erasure_id": str(receipt.erasure_id), "deleted_rows": dict(receipt.deleted_rows)},
    )
    metrics.add_metric(name="PlayersErased", unit=MetricUnit.Count, value=1 if receipt.finished else 0)
    return model_response(202, _receipt_out(receipt))


@app.get(
    "/erasures/<erasure_id>",
    summary="An erasure's receipt",
    description="When it was asked, when it finished, what it removed per store, and when the storage is due "
    "to have removed the data physically.",
    responses={
        **read_responses("The receipt", ErasureReceiptOut),
        404: documented("No erasure has this id (receipts are kept for the retention)", ErrorOut),
    },
    tags=["privacy"],
)
@tracer.capture_method(capture_response=False)
def receipt(
    erasure_id: Annotated[UUID, Path(description="The erasure_id its POST answered")],
    *,
    services: ServicesDependency,
) -> ErasureReceiptOut:
    found = _store(services).read_receipt(erasure_id)
    if found is None:
        raise NotFoundError(
            f"no erasure {erasure_id}",
            [{"parameter": "erasure_id", "in": "path", "reason": "no erasure has this id"}],
        )
    return _receipt_out(found)


@app.get(
    "/players/<player_id>/export",
    summary="Everything stored about a player",
    description="The player's sessions as stored: each event with its retention date, the session's row, "
    "whether it is in their history, and when its start arrived. Paged by session id: follow `next_cursor`.",
    responses=read_responses("One page of the player's data", PlayerExportOut),
    tags=["privacy"],
)
@tracer.capture_method(capture_response=False)
def export(
    player_id: PlayerId,
    limit: Annotated[
        int, Query(description="Sessions per page, 1 to 1000"), Field(ge=1, le=EXPORT_PAGE_MAX), WHOLE_NUMBER
    ] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    *,
    services: ServicesDependency,
) -> PlayerExportOut:
    after = _cursor(cursor, player_id, services.settings)
    page = export_player(
        player_id, store=_store(services), settings=services.settings, after=after, limit=limit
    )
    retention = services.settings.retention
    return PlayerExportOut(
        player_id=player_id,
        erased_at=format_timestamp(page.erased_at) if page.erased_at else None,
        retention_days=services.settings.retention_days,
        sessions=[_session_out(session, retention) for session in page.sessions],
        next_cursor=export_cursor(player_id, page.next_after, services.settings) if page.next_after else None,
    )


def _store(services: Services) -> PlayerDataStore:
    assert services.player_data is not None  # build_services makes one
    return services.player_data


def _cursor(cursor: str | None, player_id: str, settings: Settings) -> UUID | None:
    if cursor is None:
        return None
    try:
        return export_position(cursor, player_id, settings)
    except NotAnExportCursorError:
        reason = "not a cursor this API returned for this player's export"
        raise BadRequestError(
            f"invalid request: cursor: {reason}", [{"parameter": "cursor", "in": "query", "reason": reason}]
        ) from None


def _session_out(session: ExportedSession, retention: timedelta) -> ExportedSessionOut:
    events = [
        ExportedEvent(
            event="start" if entry.kind is WriteKind.START else "end",
            ts=format_timestamp(entry.ts),
            country=entry.country or None,
            retained_until=format_timestamp(entry.ts + retention),
        )
        for entry in sorted(session.writes, key=lambda entry: entry.ts)
        if entry.kind is not WriteKind.ARRIVAL
    ]
    row = session.halves
    return ExportedSessionOut(
        session_id=session.session_id,
        events=events,
        session=None
        if row is None
        else {
            "country": row.country,
            "start_ts": format_timestamp(row.start_ts) if row.start_ts else None,
            "end_ts": format_timestamp(row.end_ts) if row.end_ts else None,
        },
        completed=session.completed,
        arrivals=[
            format_timestamp(slot_start(e.slot)) for e in session.writes if e.kind is WriteKind.ARRIVAL
        ],
    )


def _receipt_out(receipt: ErasureReceipt) -> ErasureReceiptOut:
    due = receipt.physical_removal_due
    return ErasureReceiptOut(
        erasure_id=receipt.erasure_id,
        status="finished" if receipt.finished else "in_progress",
        player_hash=receipt.player_hash.hex(),
        asked_at=format_timestamp(receipt.asked_at),
        finished_at=format_timestamp(receipt.finished_at) if receipt.finished_at else None,
        events_discarded_before=format_timestamp(receipt.asked_at),
        stores=ErasureStores(
            cassandra=CassandraRemoved(
                deleted_rows=dict(sorted(receipt.deleted_rows.items())),
                player_id_removed=dict(sorted(receipt.player_id_removed.items())),
            ),
            cache=CacheRemoved(deleted_keys=receipt.cache_keys_deleted),
        ),
        physical_removal_due=format_timestamp(due) if due else None,
        completed_by=receipt.completed_by,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
