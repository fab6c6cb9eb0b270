"""A function for the execution-environment tests: it reports which process ran it and what it was given, can
be held at a barrier of the test's (to prove invocations overlap), exits, or runs past its timeout.
It records its SnapStart phases (init, the hooks, each invocation) in PROBE_PHASES, when set, and its init
lasts PROBE_INIT_SECONDS more, when set."""

import json
import os
import socket
import time
from pathlib import Path

from snapshot_restore_py import register_after_restore, register_before_snapshot


def record(phase: str) -> None:
    if os.environ.get("PROBE_PHASES"):
        with Path(os.environ["PROBE_PHASES"]).open("a") as phases:
            phases.write(f"{phase} {os.getpid()}\n")


record("init")
time.sleep(float(os.environ.get("PROBE_INIT_SECONDS", "0")))
register_before_snapshot(record, "before_snapshot")
register_after_restore(record, "after_restore")


def lambda_handler(event, context):
    record("invoke")
    order = json.loads(event.get("body") or "{}")
    if "exit" in order:
        os._exit(order["exit"])
    if "hold_at" in order:
        with socket.create_connection(("127.0.0.1", order["hold_at"])) as barrier:
            barrier.sendall(str(order.get("id")).encode() + b"\n")
            barrier.recv(16)
    body = {
        "pid": os.getpid(),
        "order": order,
        "path": event.get("path"),
        "request_id": context.aws_request_id,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "environment": dict(os.environ),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
