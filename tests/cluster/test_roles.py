"""The cluster's logins: every node lets the administrative role in as a superuser, and none knows Cassandra's
default superuser any more.

The roles are replicated to each node after Cassandra wrote its default superuser to one of them; a node that
checks a role on a copy it does not have refuses it (tools/player_sessions_local/cassandra_roles.py). A fresh
clone's run of this tier once failed at start-up so.
"""

from __future__ import annotations

import pytest

from player_sessions_local.cassandra_roles import ADMIN_ROLE, DEFAULT_SUPERUSER
from tests.cluster.conftest import NODES

pytestmark = pytest.mark.cluster


def test_each_node_lets_the_administrative_role_in_as_superuser_and_knows_no_default_superuser(pinned):
    # Given one connection per node, each logged in through that node alone as the administrative role
    # When each node lists the roles
    roles = {node: {row.role: row for row in pinned[node].session().execute("LIST ROLES")} for node in NODES}

    # Then every node answered as the administrator, and none still has Cassandra's default superuser
    for node in NODES:
        assert roles[node][ADMIN_ROLE].super, f"node {node}: {sorted(roles[node])}"
        assert roles[node][ADMIN_ROLE].login, f"node {node}"
        assert DEFAULT_SUPERUSER not in roles[node], f"node {node}: {sorted(roles[node])}"
