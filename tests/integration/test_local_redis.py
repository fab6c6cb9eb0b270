"""The local Redis stores values with an expiry, as the cache relies on."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.integration


def test_value_is_read_back_until_it_expires(redis_connection):
    # Given a value set with a 300 ms expiry
    client = redis_connection.client()
    key = f"test:{uuid.uuid4()}"
    client.set(key, b'{"starts": 3}', px=300)
    # When it is read at once / Then it is there, with its expiry
    assert client.get(key) == b'{"starts": 3}'
    assert 0 < client.pttl(key) <= 300
    # When the expiry has passed / Then it is gone
    time.sleep(0.5)
    assert client.get(key) is None
