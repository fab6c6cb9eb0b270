"""The unit tier runs with the network switched off: a test that quietly needs a service (or the internet)
fails at once instead of passing on a machine that happens to have it. Unix sockets stay allowed (the event
loop's self-pipe).

A test marked ``@pytest.mark.allow_hosts([...])`` (pytest-socket's marker, always with a comment saying why)
is left to pytest-socket instead: it may resolve names, and connect only to the hosts listed."""

from __future__ import annotations

from collections.abc import Iterator

# Importing a handler builds Powertools' Tracer, which imports the X-Ray SDK even when tracing is off (outside
# Lambda it is): the SDK's global recorder creates its UDP emitter's socket at import, unconnected, and sends
# nothing. Imported once here, before any test runs, so that a test importing a handler still runs with every
# socket blocked, and only that import-time socket is let through.
import aws_xray_sdk.core  # noqa: F401 imported for its effect, see above
import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_hosts") is not None:
        # pytest-socket's own setup has already limited connect() to the marker's hosts.
        yield
        return
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
