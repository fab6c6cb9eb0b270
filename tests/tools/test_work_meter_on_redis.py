"""The local work meter's Redis side against the real local Redis: every command a client sends is counted, one
at a time or pipelined, with the bytes that went each way (what the cost model turns into ElastiCache ECPUs)."""

from __future__ import annotations

import uuid

import pytest
import redis

from player_sessions_local.work.meter import measuring, meter_client, work_record

pytestmark = pytest.mark.integration


def test_single_and_pipelined_commands_are_each_counted_with_their_bytes(test_settings):
    # Given a client whose connections are metered, as every local environment's gets from the client hook
    client = redis.Redis.from_url(test_settings.redis_url)
    meter = meter_client(client)
    key = f"meter-test:{uuid.uuid4().hex}"
    client.ping()  # the connection opened, with its own commands (HELLO, CLIENT SETINFO, SELECT...)
    try:
        # When a PING, a SET and a GET go one at a time, then two GETs in one pipeline, while the meter counts
        with measuring([meter]) as tally:
            client.ping()
            client.set(key, b"12345", ex=60)
            client.get(key)
            pipe = client.pipeline(transaction=False)
            pipe.get(key)
            pipe.get(key)
            pipe.execute()
        cache = work_record(tally)["cache"]
    finally:
        client.delete(key)
        client.close()

    # Then five commands were counted (the single ones too: redis-py packs those without pack_command), and
    # the bytes are the RESP encoding of each: PING is 14 bytes on the wire, a GET of the key 33 + its length
    get = len(f"*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n")
    set_ = len(f"*5\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n$5\r\n12345\r\n$2\r\nEX\r\n$2\r\n60\r\n")
    assert cache["commands"] == 5
    assert cache["bytes_sent"] == 14 + set_ + 3 * get
