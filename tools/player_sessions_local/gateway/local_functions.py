"""The functions as the local gateway runs them: the definitions the CDK app deploys (handler, memory,
timeout, SnapStart, environment), with the environment pointed at the local Cassandra and Redis, each function
logged in as its own Cassandra role (player_sessions_local.cassandra_roles)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from player_sessions.settings import Settings
from player_sessions_local.cassandra_roles import function_environment

if TYPE_CHECKING:
    from infra_cdk.function_definitions import FunctionDefinition

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
LOCAL_OVERRIDE_PREFIXES = ("PLAYER_SESSIONS_", "POWERTOOLS_")
"""The gateway's own variables with these prefixes reach every function: what `make serve`, the tests and the
benchmark set (keyspace, ports, timeouts) wins over the deployed values."""
LOCAL_DEFAULTS = {
    # No X-Ray daemon here, and the emulator does not emulate X-Ray (its README says so).
    "POWERTOOLS_TRACE_DISABLED": "true",
    # Each invocation logs its measured work: what `python -m player_sessions_local.cost` prices.
    "PLAYER_SESSIONS_REPORT_WORK": "true",
}


def ensure_repository_root_on_path() -> None:
    """Lets ``functions.*`` and ``infra_cdk`` import when run from a checkout without them installed."""
    if (REPOSITORY_ROOT / "functions").is_dir() and str(REPOSITORY_ROOT) not in sys.path:
        sys.path.insert(0, str(REPOSITORY_ROOT))


def function_definitions() -> dict[str, FunctionDefinition]:
    """Every deployed function's definition, by name (infra_cdk.function_definitions)."""
    ensure_repository_root_on_path()
    from infra_cdk.function_definitions import FUNCTION_DEFINITIONS

    return FUNCTION_DEFINITIONS


def local_environment(
    definition: FunctionDefinition, settings: Settings, overrides: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The function's deployed environment, with the local services in place of Keyspaces and ElastiCache."""
    from infra_cdk.function_definitions import Deployment

    deployment = Deployment(
        database_mode=settings.database_mode, region=settings.aws_region, redis_url=settings.redis_url
    )
    environment = {**definition.environment(deployment), **LOCAL_DEFAULTS}
    environment.update(
        {name: value for name, value in overrides.items() if name.startswith(LOCAL_OVERRIDE_PREFIXES)}
    )
    # Last, so nothing overrides it: the function logs in as its own role, with its deployed grants only.
    if definition.uses_data:
        environment.update(function_environment(definition.function))
    return environment


@dataclass(frozen=True)
class LocalFunction:
    """A function as an environment runs it."""

    name: str
    handler: str
    """The runtime's handler setting, relative to ``code_dir`` (``handler.lambda_handler``)."""
    code_dir: Path
    memory_mb: int
    timeout_seconds: int
    snap_start: bool
    environment: Mapping[str, str]
    """The function's own variables; the runtime's (AWS_LAMBDA_*, LAMBDA_TASK_ROOT, ...) come at start."""

    @classmethod
    def deployed_as(
        cls, definition: FunctionDefinition, settings: Settings, overrides: Mapping[str, str] = os.environ
    ) -> LocalFunction:
        """From an infra_cdk.function_definitions.FunctionDefinition, pointed at the local services."""
        as_defined = {
            field.name: getattr(definition, field.name)
            for field in fields(cls)
            if field.name != "environment"
        }
        return cls(**as_defined, environment=local_environment(definition, settings, overrides))

    def runtime_environment(self, region: str) -> dict[str, str]:
        """What Lambda's runtime puts in the environment, then the function's own variables."""
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108  a fallback HOME, as in Lambda (its one writable directory)
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_seconds),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if self.snap_start else "on-demand",
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "_HANDLER": self.handler,
            **self.environment,
        }


def deployed_functions(settings: Settings) -> dict[str, LocalFunction]:
    """Every deployed function, as the local environments run it."""
    return {
        name: LocalFunction.deployed_as(definition, settings)
        for name, definition in function_definitions().items()
    }
