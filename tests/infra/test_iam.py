"""Least privilege: each function's role may Select and Modify only the tables its code uses, named one by
one; the only wildcards are the ones AWS requires."""

from __future__ import annotations

from typing import Any

import pytest

from infra_cdk.functions import VPC_ACCESS_ACTIONS, function_logical_id
from player_sessions.access import table_access
from player_sessions.routes import (
    COUNTRY_STARTS,
    FUNCTIONS,
    INGEST_EVENTS,
    PLAYER_DATA,
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
def test_function_may_select_and_modify_exactly_what_its_statements_need(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given the tables the function's statements read and write (player_sessions.access; what the function
    # really sends is held to those statements in tests/integration/test_statement_of_access.py)
    access = table_access(function)

    # When its role's statements are read from the template
    statements = role_statements(synthesized, function)

    # Then it may Select and Modify those tables, one by one, and nothing else
    assert granted(statements, "cassandra:Select") == {
        *(TABLE_ARN.format(table.name) for table in access.select),
        # The driver's handshake reads system.local and system.peers.
        SYSTEM_KEYSPACES,
    }
    assert granted(statements, "cassandra:Modify") == {TABLE_ARN.format(t.name) for t in access.modify}
    cassandra_actions = {
        action for s in statements for action in as_list(s["Action"]) if action.startswith("cassandra:")
    }
    assert cassandra_actions <= {"cassandra:Select", "cassandra:Modify"}


def test_the_grants_the_audit_found_missing_are_there_and_readers_write_nothing(
    synthesized: Synthesized,
) -> None:
    # When the roles are read from the template
    grants = {
        function: (
            granted(role_statements(synthesized, function), "cassandra:Select"),
            granted(role_statements(synthesized, function), "cassandra:Modify"),
        )
        for function in EVERY_FUNCTION
    }
    # Then the builder may read the start rows it checks before counting them
    assert TABLE_ARN.format("session_starts") in grants[ROLLUP_BUILDER][0]
    # ... the player sessions function reads only the table its history and health check read, and the cache's
    # debt (read after Redis failed it)
    assert grants[PLAYER_SESSIONS][0] == {
        TABLE_ARN.format("completed_sessions_by_player"),
        TABLE_ARN.format("rollup_progress"),
        SYSTEM_KEYSPACES,
    }
    # ... and the functions that only read write nothing
    assert grants[PLAYER_SESSIONS][1] == grants[COUNTRY_STARTS][1] == set()


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
def test_a_function_may_read_only_the_keys_it_uses(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given the cursor key (the country listing's) and the player hash key (ingest's and the privacy routes')
    secrets = synthesized.resources("AWS::SecretsManager::Secret")
    cursor_id, hash_id = sorted(secrets, key=lambda logical_id: "PlayerHash" in logical_id)

    # When
    readable = granted(role_statements(synthesized, function), "secretsmanager:GetSecretValue")

    # Then
    expected = {f"<{cursor_id}>"} if function == COUNTRY_STARTS else set()
    if function in (INGEST_EVENTS, PLAYER_DATA):
        expected.add(f"<{hash_id}>")
    assert readable == expected
