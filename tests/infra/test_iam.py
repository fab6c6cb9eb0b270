"""Least privilege: each function's role may Select and Modify only the tables its code uses, named one by
one; the only wildcards are the ones AWS requires."""

from __future__ import annotations

from typing import Any

import pytest

from infra_cdk.functions import VPC_ACCESS_ACTIONS, function_logical_id
from player_sessions.routes import (
    COUNTRY_STARTS,
    FUNCTIONS,
    INGEST_EVENTS,
    PLAYER_SESSIONS,
    ROLLUP_BUILDER,
    SCHEDULED_FUNCTIONS,
    LambdaFunction,
)
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import as_list, render

TABLE_ARN = "arn:<AWS::Partition>:cassandra:<AWS::Region>:<AWS::AccountId>:/keyspace/player_sessions/table/{}"
SYSTEM_KEYSPACES = "arn:<AWS::Partition>:cassandra:<AWS::Region>:<AWS::AccountId>:/keyspace/system*"
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

EXPECTED_TABLE_ACCESS = {
    INGEST_EVENTS: {
        "cassandra:Select": {"sessions"},
        "cassandra:Modify": {
            "sessions",
            "session_starts",
            "completed_sessions_by_player",
            "start_arrivals",
            "arrival_minutes",
        },
    },
    PLAYER_SESSIONS: {"cassandra:Select": {"completed_sessions_by_player"}, "cassandra:Modify": set()},
    # Readers write nothing: the builder alone folds.
    COUNTRY_STARTS: {
        "cassandra:Select": {
            "session_starts",
            "start_arrivals",
            "arrival_minutes",
            "start_marks",
            "start_count_rollups",
            "rollup_progress",
        },
        "cassandra:Modify": set(),
    },
    ROLLUP_BUILDER: {
        "cassandra:Select": {
            "start_arrivals",
            "arrival_minutes",
            "start_marks",
            "rollup_folds",
            "start_count_rollups",
            "rollup_progress",
        },
        "cassandra:Modify": {"start_marks", "rollup_folds", "start_count_rollups", "rollup_progress"},
    },
}
EVERY_FUNCTION = FUNCTIONS + SCHEDULED_FUNCTIONS


def role_statements(synthesized: Synthesized, function: LambdaFunction) -> list[dict[str, Any]]:
    """Every statement the function's role holds: its inline policies and the policies attached to it."""
    resources = synthesized.template_json["Resources"]
    role_id = resources[function_logical_id(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = resources[role_id]["Properties"]
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert not role.get("ManagedPolicyArns"), "no AWS managed policy: every permission is written out"
    return [render(statement) for statement in statements]


def granted(statements: list[dict[str, Any]], action: str) -> set[str]:
    return {
        resource
        for statement in statements
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


@pytest.mark.parametrize("function", EVERY_FUNCTION, ids=lambda f: f.name)
def test_function_may_select_and_modify_only_the_tables_it_uses(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # When
    statements = role_statements(synthesized, function)

    # Then
    expected = EXPECTED_TABLE_ACCESS[function]
    assert granted(statements, "cassandra:Select") == {
        *(TABLE_ARN.format(table) for table in expected["cassandra:Select"]),
        # The driver's handshake reads system.local and system.peers.
        SYSTEM_KEYSPACES,
    }
    assert granted(statements, "cassandra:Modify") == {
        TABLE_ARN.format(t) for t in expected["cassandra:Modify"]
    }
    cassandra_actions = {
        action for s in statements for action in as_list(s["Action"]) if action.startswith("cassandra:")
    }
    assert cassandra_actions <= {"cassandra:Select", "cassandra:Modify"}


@pytest.mark.parametrize("function", EVERY_FUNCTION, ids=lambda f: f.name)
def test_wildcard_resources_are_only_for_actions_that_support_nothing_else(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # When
    statements = role_statements(synthesized, function)
    wildcard_actions = {
        action for s in statements if "*" in as_list(s["Resource"]) for action in as_list(s["Action"])
    }

    # Then
    assert wildcard_actions == set(VPC_ACCESS_ACTIONS) | XRAY_ACTIONS
    assert all("*" not in action for s in statements for action in as_list(s["Action"]))


@pytest.mark.parametrize("function", EVERY_FUNCTION, ids=lambda f: f.name)
def test_function_writes_only_its_own_log_group(synthesized: Synthesized, function: LambdaFunction) -> None:
    # Given
    properties = synthesized.template_json["Resources"][function_logical_id(function)]["Properties"]
    log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]

    # When
    statements = role_statements(synthesized, function)

    # Then
    assert granted(statements, "logs:PutLogEvents") == {f"<{log_group_id}.Arn>"}
    assert granted(statements, "logs:CreateLogStream") == {f"<{log_group_id}.Arn>"}
    assert granted(statements, "logs:CreateLogGroup") == set()


@pytest.mark.parametrize("function", EVERY_FUNCTION, ids=lambda f: f.name)
def test_only_the_country_function_may_read_the_cursor_key(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    (secret_id,) = synthesized.resources("AWS::SecretsManager::Secret")

    # When
    readable = granted(role_statements(synthesized, function), "secretsmanager:GetSecretValue")

    # Then
    assert readable == ({f"<{secret_id}>"} if function == COUNTRY_STARTS else set())
