"""``python -m player_sessions_local.gateway`` (`make serve`): the gateway with the pool of execution
environments of the deployed functions (or every function in this process, ``--in-process``), and the rollup
builder beside it, as the deployed schedule runs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from player_sessions.routes import ROUTES
from player_sessions_local.gateway.authorization import LOCAL_AUTH_VARIABLE, AuthMode, Authorization
from player_sessions_local.gateway.in_process import InProcessInvoker
from player_sessions_local.gateway.invocation import Invoker
from player_sessions_local.gateway.server import DEFAULT_PORT, OPENAPI_PATH, create_server

if TYPE_CHECKING:
    from player_sessions.bootstrap import Services
    from player_sessions.settings import Settings


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    in_process: bool
    max_concurrency: int
    idle_timeout_seconds: float
    start_wait_seconds: float
    """How long a request finding every environment busy waits for one before 429."""
    rollup_builder: bool = True
    queue_seconds: float = 0.0
    """How long a request may wait for a free environment before API Gateway's 504; 0: no queue, a request
    waits ``start_wait_seconds`` at most, then is refused (429), as Lambda throttles."""


def parse_options(argv: Sequence[str] | None) -> ServeOptions:
    from player_sessions_local.gateway.pool import (
        DEFAULT_IDLE_TIMEOUT_SECONDS,
        DEFAULT_MAX_CONCURRENCY,
        DEFAULT_START_WAIT_SECONDS,
    )

    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=int(os.environ.get("LOCAL_LAMBDA_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)),
        help="execution environments running at once, across functions "
        "(default: LOCAL_LAMBDA_MAX_CONCURRENCY, else %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        dest="idle_timeout_seconds",
        default=float(os.environ.get("LOCAL_LAMBDA_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT_SECONDS)),
        help="seconds an idle environment stays warm (default: %(default)s)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        default=os.environ.get("LOCAL_LAMBDA_IN_PROCESS", "") == "true",
        help="run every function in the gateway's process, one invocation at a time: one "
        "environment, for comparison (or LOCAL_LAMBDA_IN_PROCESS=true)",
    )
    parser.add_argument(
        "--queue-seconds",
        type=float,
        default=0.0,
        help="let a request wait this long for a free environment instead of refusing it with 429 "
        "(an experiment: neither API Gateway nor Lambda queues)",
    )
    parser.add_argument(
        "--start-wait-ms",
        type=float,
        default=float(os.environ.get("LOCAL_LAMBDA_START_WAIT_MS", DEFAULT_START_WAIT_SECONDS * 1000)),
        help="how long a request finding every environment busy waits for one before 429, standing for the "
        "cold start Lambda would give it (default: LOCAL_LAMBDA_START_WAIT_MS, else %(default)g; 0: refused "
        "at once)",
    )
    parser.add_argument(
        "--no-rollup-builder",
        action="store_true",
        help="do not fold arrivals in the background (deployed, a scheduled function does)",
    )
    arguments = parser.parse_args(argv)
    if arguments.max_concurrency < 1:
        parser.error("--max-concurrency must be at least 1")
    if arguments.start_wait_ms < 0:
        parser.error("--start-wait-ms must not be negative")
    return ServeOptions(
        arguments.host,
        arguments.port,
        arguments.in_process,
        arguments.max_concurrency,
        arguments.idle_timeout_seconds,
        arguments.start_wait_ms / 1000,
        rollup_builder=not arguments.no_rollup_builder,
        queue_seconds=arguments.queue_seconds,
    )


def build_invoker(options: ServeOptions) -> Invoker:
    """The pool of execution environments of the deployed functions, or the one in-process environment."""
    from player_sessions.settings import get_settings
    from player_sessions_local.gateway.local_functions import deployed_functions
    from player_sessions_local.gateway.pool import EnvironmentPool

    settings = get_settings()
    if options.in_process:
        return InProcessInvoker(ROUTES, services_for=function_services(settings))
    return EnvironmentPool(
        deployed_functions(settings),
        region=settings.aws_region,
        max_concurrency=options.max_concurrency,
        idle_timeout_seconds=options.idle_timeout_seconds,
        wait_timeout_seconds=options.queue_seconds,
        start_wait_seconds=options.start_wait_seconds,
    )


def function_services(settings: Settings) -> Callable[[str], Services]:
    """Builds a function's services logged in as its own Cassandra role (the in-process environment)."""
    from player_sessions.bootstrap import build_services, with_deployed_secrets
    from player_sessions_local.cassandra_roles import as_function

    functions = {route.function.name: route.function for route in ROUTES}
    return lambda name: build_services(as_function(functions[name], with_deployed_secrets(settings)))


def start_background_tasks(options: ServeOptions) -> list[Any]:
    """What runs beside the server, started once it is bound: the scheduled rollup builders of the deployed
    stack, here a process of their own with a thread per part running as the part's scheduled function does
    (each minute, folding each slot as it settles until just before the next run is due; see
    functions/rollup_builder)."""
    if not options.rollup_builder:
        return []
    from player_sessions.bootstrap import with_deployed_secrets
    from player_sessions.routes import ROLLUP_BUILDER
    from player_sessions.settings import get_settings
    from player_sessions_local.builder_process import BuilderProcess
    from player_sessions_local.cassandra_roles import as_function
    from player_sessions_local.work import reporting

    settings = as_function(ROLLUP_BUILDER, with_deployed_secrets(get_settings()))
    return [BuilderProcess.start(settings, report_work=reporting(default=True))]


def main(argv: Sequence[str] | None = None) -> None:
    from player_sessions.settings import get_settings
    from player_sessions_local.gateway.local_functions import ensure_repository_root_on_path

    options = parse_options(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    ensure_repository_root_on_path()
    mode = AuthMode.from_environment()
    # Before the settings are read and the functions' environments made: the authorizer trusts the local login.
    login = start_local_login() if mode is AuthMode.ON else None
    api_key = get_settings().api_key
    gateway = create_server(
        options.host,
        options.port,
        api_key=api_key,
        invoker=build_invoker(options),
        authorization=local_authorization if mode is AuthMode.ON else None,
    )
    background = start_background_tasks(options)
    print(
        f"Serving the player session API at {gateway.url} (API key {'required' if api_key else 'off'}; "
        f"{_describe(options)})"
    )
    print(f"OpenAPI document: {gateway.url}{OPENAPI_PATH}")
    print(_auth_banner(mode, gateway.url), flush=True)
    if mode is AuthMode.OFF:
        logging.getLogger(__name__).warning("%s", _auth_banner(mode, gateway.url))
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for task in background:
            task.stop()
        gateway.server_close()
        if login is not None:
            login.stop()


def start_local_login() -> Any:
    """The local login's key server, and the variables that make the authorizer trust it."""
    from player_sessions_local.local_auth import JwksServer, token_settings

    login = JwksServer().start()
    os.environ.update(token_settings(login.url))
    return login


def local_authorization(invoker: Invoker) -> Authorization:
    from player_sessions_local.local_auth import signing_keys

    return Authorization(invoker, signing_keys())


def _auth_banner(mode: AuthMode, url: str) -> str:
    if mode is AuthMode.OFF:
        return (
            f"CHECKS OFF ({LOCAL_AUTH_VARIABLE}=off): no player token or signature is checked; anyone may call "
            "every route and post events for any player. Deployed, none of this is allowed."
        )
    tool = "uv run python -m player_sessions_local.local_auth"
    return "\n".join(
        [
            "Callers are checked as deployed (docs/security.md):",
            f"  a game client's token for player P:  {tool} token P",
            f"    then POST {url}/events with 'Authorization: Bearer <token>' (P's events only)",
            f"  a request signed as the studio:      {tool} request GET '{url}/countries/starts?hours=24'",
            f"    (or any SigV4 client with: {tool} credentials)",
            f"  {LOCAL_AUTH_VARIABLE}=off serves without checks (scripts, quick experiments)",
        ]
    )


def _describe(options: ServeOptions) -> str:
    if options.in_process:
        return "every function in this process, one invocation at a time"
    return (
        f"up to {options.max_concurrency} execution environments, idle ones retired after "
        f"{options.idle_timeout_seconds:g} s"
    )


def _stop_serving(_signum: int, _frame: Any) -> None:
    """SIGTERM (make, a process manager) stops the server the same clean way Ctrl-C does."""
    raise KeyboardInterrupt
