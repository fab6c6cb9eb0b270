"""The Amazon Keyspaces tables are the local schema's tables: same names, keys, clustering order, columns."""

from __future__ import annotations

import pytest

from infra_cdk.constants import KEYSPACE
from player_sessions.schema import SESSION_STARTS, TABLES, Table
from tests.infra.conftest import Synthesized

RETENTION_SECONDS = 31_536_000  # 365 days


def cfn_table(synthesized: Synthesized, table: Table) -> dict:
    matches = [
        resource
        for resource in synthesized.resources("AWS::Cassandra::Table").values()
        if resource["Properties"]["TableName"] == table.name
    ]
    assert len(matches) == 1, f"expected one AWS::Cassandra::Table named {table.name}"
    return matches[0]


def test_the_keyspace_holds_one_table_per_local_table_definition(synthesized: Synthesized) -> None:
    # When
    keyspaces = synthesized.resources("AWS::Cassandra::Keyspace")
    tables = synthesized.resources("AWS::Cassandra::Table")

    # Then
    assert [k["Properties"]["KeyspaceName"] for k in keyspaces.values()] == [KEYSPACE] == ["player_sessions"]
    assert sorted(t["Properties"]["TableName"] for t in tables.values()) == sorted(t.name for t in TABLES)
    assert {t["Properties"]["KeyspaceName"] for t in tables.values()} == {KEYSPACE}


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_table_schema_equals_the_local_definition(synthesized: Synthesized, table: Table) -> None:
    # When
    properties = cfn_table(synthesized, table)["Properties"]

    # Then
    assert properties["PartitionKeyColumns"] == [
        {"ColumnName": column.name, "ColumnType": column.cql_type} for column in table.partition_key
    ]
    assert properties.get("ClusteringKeyColumns", []) == [
        {"Column": {"ColumnName": c.column.name, "ColumnType": c.column.cql_type}, "OrderBy": c.order.value}
        for c in table.clustering
    ]
    assert properties.get("RegularColumns", []) == [
        {"ColumnName": column.name, "ColumnType": column.cql_type} for column in table.regular
    ]


def test_session_starts_are_bucketed_by_hour_and_shard_newest_first(synthesized: Synthesized) -> None:
    """One table spelled out, as the local CQL has it."""
    # When
    properties = cfn_table(synthesized, SESSION_STARTS)["Properties"]

    # Then
    assert properties["PartitionKeyColumns"] == [
        {"ColumnName": "hour", "ColumnType": "timestamp"},
        {"ColumnName": "shard", "ColumnType": "int"},
    ]
    assert [(c["Column"]["ColumnName"], c["OrderBy"]) for c in properties["ClusteringKeyColumns"]] == [
        ("country", "ASC"),
        ("ts", "DESC"),
        ("session_id", "ASC"),
    ]


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_rows_expire_after_the_retention_and_can_be_restored_to_a_point_in_time(
    synthesized: Synthesized, table: Table
) -> None:
    # When
    properties = cfn_table(synthesized, table)["Properties"]

    # Then
    assert properties["DefaultTimeToLive"] == RETENTION_SECONDS
    assert properties["PointInTimeRecoveryEnabled"] is True
    assert properties["ClientSideTimestampsEnabled"] is True
    assert properties["EncryptionSpecification"] == {"EncryptionType": "AWS_OWNED_KMS_KEY"}
    assert properties["BillingMode"] == {"Mode": "ON_DEMAND"}


def test_deleting_the_stack_keeps_the_data(synthesized: Synthesized) -> None:
    # When
    data_resources = {
        **synthesized.resources("AWS::Cassandra::Keyspace"),
        **synthesized.resources("AWS::Cassandra::Table"),
    }

    # Then
    assert {(r["DeletionPolicy"], r["UpdateReplacePolicy"]) for r in data_resources.values()} == {
        ("RetainExceptOnCreate", "Retain")
    }
