"""Invokes one function's real ``lambda_handler`` with an event fixture, in this process (no Docker).

    python -m player_sessions_local.invoke FUNCTION_NAME EVENT_FILE   # e.g. ingest_events events/health.json
    python -m player_sessions_local.invoke --list

Prints the function's response as JSON on stdout; what the function itself prints (logs, EMF metrics) goes
to stderr, as it would go to CloudWatch rather than to the caller. Exits 0 when the function returned, 1 when
it raised.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from player_sessions.routes import ROUTES
from player_sessions_local.cassandra_roles import function_environment
from player_sessions_local.gateway.answers import MalformedProxyResponseError, proxy_result_to_response
from player_sessions_local.gateway.in_process import LocalLambdaContext, definition_limits, invoke_handler
from player_sessions_local.gateway.local_functions import ensure_repository_root_on_path


def describe_functions() -> list[str]:
    """One line per function: its name and the routes it serves, from the route table."""
    routes_by_function: dict[str, list[str]] = {}
    for route in ROUTES:
        routes_by_function.setdefault(route.function.name, []).append(f"{route.method} {route.path}")
    return [f"{name:<20} {', '.join(routes)}" for name, routes in routes_by_function.items()]


def invoke_function(function_name: str, event: dict[str, Any]) -> Any:
    """The function's response to the event; whatever it raises propagates.

    The import happens under the redirection too, because loggers bind their stream when they are created.
    """
    timeout_ms, memory_mb = definition_limits()[function_name]
    # Logged in as the function's own Cassandra role, as its execution environments are.
    function = next(route.function for route in ROUTES if route.function.name == function_name)
    os.environ.update(function_environment(function))
    # Loggers made before (by this tool's own imports) wrote to stdout: they go to stderr too.
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        module = importlib.import_module(_handler_modules()[function_name])
        context = LocalLambdaContext(function_name, timeout_ms=timeout_ms, memory_limit_in_mb=memory_mb)
        return invoke_handler(module.lambda_handler, event, context)


def _handler_modules() -> dict[str, str]:
    return {route.function.name: route.function.handler_module for route in ROUTES}


def _warn_if_not_a_proxy_response(result: Any) -> None:
    try:
        proxy_result_to_response(result)
    except MalformedProxyResponseError as error:
        print(f"warning: API Gateway would answer 502, not a proxy response: {error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.invoke",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("function_name", nargs="?", help="a function from the route table (see --list)")
    parser.add_argument("event_file", nargs="?", type=Path, help="a proxy event, e.g. events/health.json")
    parser.add_argument("--list", action="store_true", help="list the functions and the routes they serve")
    arguments = parser.parse_args(argv)

    if arguments.list:
        print("\n".join(describe_functions()))
        return 0
    if arguments.function_name is None or arguments.event_file is None:
        parser.error("FUNCTION_NAME and EVENT_FILE are required (or --list)")
    if arguments.function_name not in _handler_modules():
        parser.error(f"unknown function {arguments.function_name!r}; known: {', '.join(_handler_modules())}")
    try:
        event = json.loads(arguments.event_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        parser.error(f"cannot read the event {arguments.event_file}: {error}")

    ensure_repository_root_on_path()
    try:
        result = invoke_function(arguments.function_name, event)
    except Exception:
        traceback.print_exc()
        return 1
    print(json.dumps(result, indent=2, default=str))
    _warn_if_not_a_proxy_response(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
