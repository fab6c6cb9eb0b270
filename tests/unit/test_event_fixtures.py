"""The fixtures in events/ (proxy events as `sam local invoke -e` takes them) are checked against the route
table and against the generator that writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from player_sessions.routes import ROUTES
from player_sessions_local.fixtures import EVENTS_DIRECTORY, FIXTURES, write_fixtures
from player_sessions_local.gateway.routing import match_route

FIXTURE_FILES = sorted(EVENTS_DIRECTORY.glob("*.json"))


def test_every_fixture_written_by_the_generator_is_checked_in():
    # Given the generator's fixture list
    expected = {f"{fixture.name}.json" for fixture in FIXTURES}
    # When events/ is listed
    checked_in = {path.name for path in FIXTURE_FILES}
    # Then every generated fixture is there
    assert expected <= checked_in


def test_every_route_has_a_fixture():
    # Given the route table and the checked-in fixtures
    fixtures = [json.loads(path.read_text(encoding="utf-8")) for path in FIXTURE_FILES]
    covered = {(event["httpMethod"], event["resource"]) for event in fixtures}
    # Then each route is invoked by at least one fixture (a new route needs one: player_sessions_local.fixtures)
    assert {(route.method, route.path) for route in ROUTES} - covered == set()


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[path.name for path in FIXTURE_FILES])
def test_fixture_is_a_rest_proxy_event_for_a_route_in_the_route_table(path: Path):
    # Given a checked-in fixture
    event = json.loads(path.read_text(encoding="utf-8"))
    # When it is read as a REST proxy event and routed
    model = APIGatewayProxyEventModel.model_validate(event)
    match = match_route(ROUTES, event["httpMethod"], event["path"])
    # Then it routes to its resource, and its parts agree with each other
    assert match is not None and match.route is not None
    assert (match.route.method, match.route.path) == (event["httpMethod"], event["resource"])
    assert (event["pathParameters"] or {}) == match.path_parameters
    assert model.requestContext.resourcePath == event["resource"]
    assert model.requestContext.httpMethod == event["httpMethod"]
    assert model.requestContext.path == f"/{model.requestContext.stage}{event['path']}"
    assert event["headers"] == {name: values[-1] for name, values in event["multiValueHeaders"].items()}
    single_query = {
        name: values[-1] for name, values in (event["multiValueQueryStringParameters"] or {}).items()
    }
    assert (event["queryStringParameters"] or {}) == single_query
    assert isinstance(event["isBase64Encoded"], bool)


def test_fixture_generator_reproduces_the_checked_in_files_byte_for_byte(tmp_path):
    # Given the checked-in fixtures
    # When the generator writes them again into an empty directory
    written = write_fixtures(tmp_path)
    # Then every file is identical to the checked-in one
    assert written
    for path in written:
        assert path.read_bytes() == (EVENTS_DIRECTORY / path.name).read_bytes(), path.name
