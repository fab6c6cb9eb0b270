"""GET /countries/starts (starts per country over the last X hours), GET /countries/{country}/starts, and the
live-ops figures: GET /countries/online and GET /countries/session-lengths."""

import json
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from player_sessions.bootstrap import ServicesDependency
from player_sessions.domain.country_starts.records import RELATIVE_ERROR
from player_sessions.domain.live_ops import Durations
from player_sessions.http import build_resolver, read_responses
from player_sessions.models import (
    PARTIAL_REASON,
    CountryLengths,
    CountryOnline,
    CountryStartsCount,
    CountryStartsOut,
    LengthFigures,
    OnlineOut,
    PartialAnswer,
    SessionLengthsOut,
    StartsByCountryOut,
    format_timestamp,
)
from player_sessions.models.fields import COUNTRY_REGEX, COUNTRY_RULE, CURSOR_MAX_LENGTH, WHOLE_NUMBER
from player_sessions.observability import MetricUnit, logger, metrics, tracer
from player_sessions.settings import get_settings

# A cold start without the cursor key's secret fails here (Keyspaces mode), rather than sign with the public
# development key.
get_settings().cursor_keys()

app = build_resolver()

Hours = Annotated[
    int, Query(description="The window: the last X hours, 1 to 8760"), Field(ge=1, le=8760), WHOLE_NUMBER
]


@app.get(
    "/countries/starts",
    summary="Sessions started per country over the last X hours",
    description="Exact counts (re-sent events never count twice), sorted by starts descending then country. A "
    "count counts every start stored in the window, whoever's: the starts of a player erased since stay counted "
    "(an aggregate holds no personal data), while no listing shows them.",
    responses=read_responses("The counts", StartsByCountryOut),
    tags=["countries"],
)
@tracer.capture_method(capture_response=False)
def count_starts(hours: Hours, services: ServicesDependency) -> Response[Any]:
    result = services.country_starts.counts(hours)
    metrics.add_metric(name="CountriesReturned", unit=MetricUnit.Count, value=len(result.counts))
    body = StartsByCountryOut(
        hours=hours,
        from_=format_timestamp(result.window.start),
        to=format_timestamp(result.window.end),
        total=result.total,
        countries=[CountryStartsCount(country=c, starts=n) for c, n in result.counts],
        folded_through=_instant(result.folded_through),
        late_starts=result.late_starts,
        partial=_partial(result.unread_from),
    )
    return _json(body)


def _json(body: StartsByCountryOut | OnlineOut | SessionLengthsOut) -> Response[Any]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        # Absent fields are the optional ``partial``; every other null (a settledness not known yet, a mean of
        # no sessions) is kept.
        body=body.model_dump_json(by_alias=True, exclude=None if body.partial else {"partial"}),
    )


def _instant(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def _partial(unread_from: datetime | None) -> PartialAnswer | None:
    if unread_from is None:
        return None
    metrics.add_metric(name="PartialAnswers", unit=MetricUnit.Count, value=1)
    return PartialAnswer(reason=PARTIAL_REASON, arrived_before=format_timestamp(unread_from))


@app.get(
    "/countries/online",
    summary="Sessions open now, per country",
    description="Sessions started within the last `open_session_hours` (a setting, 12 by default; an older "
    "session never ended counts as abandoned) whose end is not stored, exactly: re-sent events never count "
    "twice, an end stored before its start closes the session once the start arrives, and a session with only "
    "an end is never open. The window starts at the first whole second of `now - open_session_hours`. Every "
    "session stored counts, whoever's: an erased player's stay counted (an aggregate holds no personal data).",
    responses=read_responses("The sessions open now", OnlineOut),
    tags=["countries"],
)
@tracer.capture_method(capture_response=False)
def count_online(services: ServicesDependency) -> Response[Any]:
    result = services.live_ops.online()
    body = OnlineOut(
        open_session_hours=services.settings.open_session_hours,
        from_=format_timestamp(result.window.start),
        to=format_timestamp(result.window.end),
        total=result.total,
        countries=[CountryOnline(country=c, online=n) for c, n in result.counts],
        folded_through=_instant(result.settled.folded_through),
        late_starts=result.settled.late,
        partial=_partial(result.settled.unread_from),
    )
    return _json(body)


@app.get(
    "/countries/session-lengths",
    summary="How long the sessions completed over the last X hours lasted, per country",
    description="Sessions whose end is stamped in the window (from its first whole second) and whose start is "
    "stored too. Count and mean are exact; p50, p90 and p99 come from log-scale histograms, within "
    "`relative_error` of the exact nearest-rank quantile. Durations below zero or above `open_session_hours` "
    "are counted in `outside` and left out of the other figures. Every session stored counts, whoever's: an "
    "erased player's stay counted (an aggregate holds no personal data).",
    responses=read_responses("The session lengths", SessionLengthsOut),
    tags=["countries"],
)
@tracer.capture_method(capture_response=False)
def session_lengths(hours: Hours, services: ServicesDependency) -> Response[Any]:
    result = services.live_ops.session_lengths(hours)
    body = SessionLengthsOut(
        hours=hours,
        from_=format_timestamp(result.window.start),
        to=format_timestamp(result.window.end),
        relative_error=RELATIVE_ERROR,
        open_session_hours=services.settings.open_session_hours,
        total=LengthFigures(**_figures(result.total)),
        countries=[CountryLengths(country=c, **_figures(d)) for c, d in result.countries],
        folded_through=_instant(result.settled.folded_through),
        late_sessions=result.settled.late,
        partial=_partial(result.settled.unread_from),
    )
    return _json(body)


def _figures(durations: Durations) -> dict[str, Any]:
    def seconds(ms: float | None) -> float | None:
        # Not rounded: a rounded mean would not be exact, a rounded quantile could leave the stated error.
        return None if ms is None else ms / 1000

    return {
        "sessions": durations.sessions,
        "mean_seconds": seconds(durations.mean_ms),
        "p50_seconds": seconds(durations.quantile_ms(0.5)),
        "p90_seconds": seconds(durations.quantile_ms(0.9)),
        "p99_seconds": seconds(durations.quantile_ms(0.99)),
        "outside": durations.outside,
    }


@app.get(
    "/countries/<country>/starts",
    summary="The sessions started in one country over the last X hours",
    description="Newest first. Follow `next_cursor` to the end to get every start of the window exactly once; "
    "the cursor keeps the window of the first page, less what has left the retention since. The starts of "
    "players erased since are left out (the counts keep them), so a listing may hold fewer sessions than the "
    "country's count.",
    responses=read_responses("One page", CountryStartsOut),
    tags=["countries"],
)
@tracer.capture_method(capture_response=False)
def list_starts(
    country: Annotated[str, Path(pattern=COUNTRY_REGEX, description=COUNTRY_RULE)],
    hours: Hours,
    limit: Annotated[
        int, Query(description="Page size, 1 to 1000"), Field(ge=1, le=1000), WHOLE_NUMBER
    ] = 100,
    cursor: Annotated[
        str | None, Query(max_length=CURSOR_MAX_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
    *,
    services: ServicesDependency,
) -> Response[Any]:  # the 200 body is declared in responses (CountryStartsOut), built as plain JSON
    logger.append_keys(country=country.upper())
    page = services.country_starts.page(country, hours, limit=limit, cursor=cursor)
    # The document's shape is CountryStartsOut (tests hold the two together); built as plain JSON because a
    # page holds up to a thousand starts, and validating each one as a model cost more than reading them.
    body = {
        "country": country.upper(),
        "hours": hours,
        "from": format_timestamp(page.window.start),
        "to": format_timestamp(page.window.end),
        "sessions": [
            {"session_id": str(r.session_id), "player_id": r.player_id, "ts": format_timestamp(r.ts)}
            for r in page.starts
        ],
        "next_cursor": page.next_cursor,
    }
    if (partial := _partial(page.unread_from)) is not None:
        body["partial"] = partial.model_dump()
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
