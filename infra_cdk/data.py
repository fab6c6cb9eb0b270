"""The Amazon Keyspaces keyspace and its tables, built from the table definitions the local schema uses."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cassandra as cassandra
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra_cdk.constants import KEYSPACE, RETENTION_SECONDS
from player_sessions.access import TableAccess
from player_sessions.schema import TABLES, Column, Table

# Keyspaces always encrypts at rest; naming the key type keeps that explicit in the template. An AWS-owned key
# costs nothing and needs no key policy; a customer-managed key would add a KMS call path to every request.
ENCRYPTION_AT_REST = "AWS_OWNED_KMS_KEY"
# Pay per request: the load of a session service follows players' hours, and nothing has to be forecast.
BILLING_MODE = "ON_DEMAND"
SELECT = "cassandra:Select"
MODIFY = "cassandra:Modify"


def _column(column: Column) -> cassandra.CfnTable.ColumnProperty:
    return cassandra.CfnTable.ColumnProperty(column_name=column.name, column_type=column.cql_type)


KEEP_ONCE_CREATED = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
"""Kept when the stack is deleted or the resource replaced, but removed by the rollback of the deploy that
created it (CloudFormation's RetainExceptOnCreate): a first deploy that fails for another reason leaves no
keyspace, table, secret or key behind whose fixed name would make the retry fail."""


class KeyspacesData(Construct):
    """The keyspace and one ``AWS::Cassandra::Table`` per entry of ``player_sessions.schema.TABLES``."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.keyspace = cassandra.CfnKeyspace(self, "Keyspace", keyspace_name=KEYSPACE)
        self.keyspace.apply_removal_policy(KEEP_ONCE_CREATED)
        self.tables: dict[str, cassandra.CfnTable] = {table.name: self._table(table) for table in TABLES}

    def _table(self, table: Table) -> cassandra.CfnTable:
        resource = cassandra.CfnTable(
            self,
            _construct_id(table),
            keyspace_name=KEYSPACE,
            table_name=table.name,
            partition_key_columns=[_column(column) for column in table.partition_key],
            clustering_key_columns=[
                cassandra.CfnTable.ClusteringKeyColumnProperty(
                    column=_column(clustering.column), order_by=clustering.order.value
                )
                for clustering in table.clustering
            ]
            or None,
            regular_columns=[_column(column) for column in table.regular] or None,
            # A safety net under the per-write TTLs; a default above zero also switches TTL on for the table.
            default_time_to_live=RETENTION_SECONDS,
            point_in_time_recovery_enabled=True,
            # Write times from the driver, as with Cassandra: of two writes to one cell, the later one sent wins
            # (without it Keyspaces stamps writes on arrival, and concurrent writes of a batch could race).
            client_side_timestamps_enabled=True,
            encryption_specification=cassandra.CfnTable.EncryptionSpecificationProperty(
                encryption_type=ENCRYPTION_AT_REST
            ),
            billing_mode=cassandra.CfnTable.BillingModeProperty(mode=BILLING_MODE),
        )
        # The tables hold the service's data: a stack deletion or replacement must not take it along.
        resource.apply_removal_policy(KEEP_ONCE_CREATED)
        resource.add_resource_dependency(self.keyspace)
        return resource

    def table_arn(self, table: Table) -> str:
        stack = Stack.of(self)
        return (
            f"arn:{stack.partition}:cassandra:{stack.region}:{stack.account}"
            f":/keyspace/{KEYSPACE}/table/{self.tables[table.name].table_name}"
        )

    def system_tables_arn(self) -> str:
        stack = Stack.of(self)
        return f"arn:{stack.partition}:cassandra:{stack.region}:{stack.account}:/keyspace/system*"

    def grant(self, grantee: iam.IGrantable, access: TableAccess) -> None:
        """Select and Modify on the named tables only, plus the reads every driver connection makes."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadTables",
                actions=[SELECT],
                resources=[
                    *(self.table_arn(table) for table in access.select),
                    # Keyspaces requires Select on its system keyspaces (system, system_schema,
                    # system_schema_mcs, ...) for the driver's handshake: it reads system.local and
                    # system.peers on every connection. AWS documents this `system*` pattern for it; no user
                    # data lives there.
                    self.system_tables_arn(),
                ],
            )
        )
        if access.modify:
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="WriteTables",
                    actions=[MODIFY],
                    resources=[self.table_arn(table) for table in access.modify],
                )
            )


def _construct_id(table: Table) -> str:
    return "".join(part.capitalize() for part in table.name.split("_")) + "Table"
