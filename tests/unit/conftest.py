"""The unit tier runs with the network switched off: a test that quietly needs a service (or the internet)
fails at once instead of passing on a machine that happens to have it. Unix sockets stay allowed (the event
loop's self-pipe)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
