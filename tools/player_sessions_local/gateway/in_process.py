"""Functions run in the gateway's own process, one invocation at a time, with a context object written here:
for unit tests (handlers injected), the fixture invoker, and the one-environment comparison
(``python -m player_sessions_local.gateway --in-process``)."""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from player_sessions.bootstrap import Services, get_services
from player_sessions.routes import AUTHORIZER, Route
from player_sessions_local.gateway.invocation import Invocation, Outcome
from player_sessions_local.gateway.routing import ACCOUNT_ID, REGION

LambdaHandler = Callable[[dict[str, Any], Any], Any]

INTEGRATION_TIMEOUT_MS = 29_000
"""API Gateway's integration timeout: the most time a function behind it ever gets."""
DEFAULT_MEMORY_MB = 1024
_LOGGER = logging.getLogger(__name__)


@dataclass
class LocalLambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = INTEGRATION_TIMEOUT_MS
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = DEFAULT_MEMORY_MB
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        started = datetime.now(UTC).strftime("%Y/%m/%d")
        return f"{started}/[{self.function_version}]{uuid.uuid5(uuid.NAMESPACE_OID, self.aws_request_id).hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class HandlerRegistry:
    """Each function's ``lambda_handler``: injected, or imported once on first use (like a cold start)."""

    def __init__(self, routes: Iterable[Route], handlers: Mapping[str, LambdaHandler] | None = None) -> None:
        self._modules = {route.function.name: route.function.handler_module for route in routes}
        self._modules[AUTHORIZER.name] = AUTHORIZER.handler_module
        self._handlers: dict[str, LambdaHandler] = dict(handlers or {})
        self._lock = threading.Lock()

    def get(self, function_name: str, services: Callable[[], Services] | None = None) -> LambdaHandler:
        """The handler; on its first load, its routes are given ``services`` (Powertools' dependency override
        of ``get_services``) when given."""
        handler = self._handlers.get(function_name)
        if handler is not None:
            return handler
        with self._lock:
            if function_name not in self._handlers:
                module = importlib.import_module(self._modules[function_name])
                # The authorizer has no resolver and no services.
                if services is not None and hasattr(module, "app"):
                    module.app.dependency_overrides[get_services] = services
                self._handlers[function_name] = module.lambda_handler
            return self._handlers[function_name]


def invoke_handler(handler: LambdaHandler, event: dict[str, Any], context: LocalLambdaContext) -> Any:
    """Calls a handler as the Lambda runtime would: event and result pass through JSON.

    A result that JSON cannot carry raises here, as the runtime's marshalling error fails the invocation.
    """
    result = handler(json.loads(json.dumps(event)), context)
    return json.loads(json.dumps(result))


class InProcessInvoker:
    """Every function in this process, one invocation at a time, as in one Lambda execution environment.

    Powertools keeps the request being resolved on the resolver *class* (BaseRouter.current_event), shared by
    every handler here: two invocations at once read each other's body and parameters (measured before the
    lock: 5% of concurrent POSTs answered and stored another request's batch). Concurrency is what the pool of
    execution environments (player_sessions_local.gateway.pool) is for.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        handlers: Mapping[str, LambdaHandler] | None = None,
        limits: Mapping[str, tuple[int, int]] | None = None,
        services_for: Callable[[str], Services] | None = None,
    ) -> None:
        """``services_for``: the services each function's invocations get, built once per function (each logged
        in as the function's own Cassandra role); without it, whatever ``get_services`` hands out."""
        self.handlers = HandlerRegistry(routes, handlers)
        self._services_for = services_for
        self._limits = dict(definition_limits() if limits is None else limits)
        """Function name -> (timeout ms, memory MB): the deployed functions' definitions by default."""
        self._invocation_lock = threading.Lock()

    def invoke(
        self,
        function_name: str,
        event: dict[str, Any],
        *,
        request_id: str,
        trace_id: str | None = None,  # noqa: ARG002  the Invoker Protocol's keyword; no X-Ray in this process
    ) -> Invocation:
        timeout_ms, memory_mb = self._limits.get(function_name, (INTEGRATION_TIMEOUT_MS, DEFAULT_MEMORY_MB))
        try:
            with self._invocation_lock:
                context = LocalLambdaContext(
                    function_name,
                    aws_request_id=request_id,
                    timeout_ms=timeout_ms,
                    memory_limit_in_mb=memory_mb,
                )
                handler = self.handlers.get(function_name, self._services_of(function_name))
                result = invoke_handler(handler, event, context)
        except Exception as error:
            _LOGGER.exception("function %s raised", function_name)
            return Invocation(Outcome.FUNCTION_ERROR, detail=f"{type(error).__name__}: {error}")
        return Invocation(Outcome.RETURNED, result=result)

    def _services_of(self, function_name: str) -> Callable[[], Services] | None:
        """The function's services, built on its first invocation (as an environment's are)."""
        if self._services_for is None:
            return None
        services_for = self._services_for
        built: list[Services] = []

        def services() -> Services:
            if not built:
                built.append(services_for(function_name))
            return built[0]

        return services

    def close(self) -> None:
        """Nothing to stop: the functions live and die with this process."""


def definition_limits() -> dict[str, tuple[int, int]]:
    """(timeout ms, memory MB) of every deployed function, from the definitions the CDK app uses."""
    from player_sessions_local.gateway.local_functions import function_definitions

    return {
        name: (definition.timeout_seconds * 1000, definition.memory_mb)
        for name, definition in function_definitions().items()
    }
