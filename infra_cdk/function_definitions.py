"""What each Lambda function is: its code, handler, memory, timeout, SnapStart and environment.

Plain values (no CDK import), read by both the CDK app (infra_cdk.functions) and the local gateway's execution
environments (player_sessions_local.gateway.environments), so a function runs locally with the handler string,
limits and environment it is deployed with; only where the service runs (``Deployment``) differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra_cdk.constants import (
    AUTHORIZER_MEMORY_MB,
    AUTHORIZER_TIMEOUT_SECONDS,
    CURSOR_SECRET_READERS,
    ENVIRONMENT_PREFIX,
    FUNCTIONS_DIR,
    KEYSPACE,
    LAMBDA_MEMORY_MB,
    LAMBDA_TIMEOUT_SECONDS,
    METRICS_NAMESPACE,
    PLAYER_DATA_TIMEOUT_SECONDS,
    PLAYER_HASH_SECRET_READERS,
    RETENTION_DAYS,
    ROLLUP_BUILDER_CONCURRENCY,
    ROLLUP_BUILDER_TIMEOUT_SECONDS,
    SERVICE_NAME,
)
from player_sessions.routes import AUTHORIZER, FUNCTIONS, PLAYER_DATA, ROLLUP_BUILDER, LambdaFunction
from player_sessions.settings import DatabaseMode


@dataclass(frozen=True)
class Deployment:
    """Where the service runs: what every function is told about its database, cache and region."""

    database_mode: DatabaseMode
    region: str
    redis_url: str
    cursor_secret_arn: str | None = None
    """Secrets Manager secret of the cursor key, given to the functions that sign cursors (deployed only)."""
    player_hash_secret_arn: str | None = None
    """Secrets Manager secret of the player hash key, given to the functions that hash player ids."""
    player_tokens: dict[str, str] | None = None
    """The studio login the authorizer trusts: ``player_token_issuer``, ``_audience`` and ``_jwks_url``
    (deployed: the stack's parameters; locally: the local issuer)."""


@dataclass(frozen=True)
class FunctionDefinition:
    function: LambdaFunction
    memory_mb: int = LAMBDA_MEMORY_MB
    timeout_seconds: int = LAMBDA_TIMEOUT_SECONDS
    snap_start: bool = True
    """Deployed on published versions; the local environments emulate it around the emulator."""
    reserved_concurrency: int | None = None
    """At most this many environments at once (None: the account's pool)."""
    scheduled: bool = False
    """Started by an EventBridge schedule, not by a route: no alias, no API integration."""
    uses_data: bool = True
    """Reads or writes the service's data (Keyspaces, the cache): in the VPC, with a database role. The
    authorizer does not: outside the VPC, it reaches the studio login's published keys over the internet."""

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def handler(self) -> str:
        """The runtime's handler setting, relative to ``code_dir``."""
        return self.function.lambda_handler

    @property
    def code_dir(self) -> Path:
        """The function's code root (deployed at /var/task)."""
        return FUNCTIONS_DIR / self.function.name

    def environment(self, deployment: Deployment) -> dict[str, str]:
        """The function's environment variables (PLAYER_SESSIONS_* and Powertools) for ``deployment``."""
        service = (
            {
                "database_mode": deployment.database_mode.value,
                "aws_region": deployment.region,
                "keyspace": KEYSPACE,
                "redis_url": deployment.redis_url,
                "retention_days": str(RETENTION_DAYS),
            }
            if self.uses_data
            else {"aws_region": deployment.region, **(deployment.player_tokens or {})}
        )
        if deployment.cursor_secret_arn is not None and self.function in CURSOR_SECRET_READERS:
            service["cursor_secret_arn"] = deployment.cursor_secret_arn
        if deployment.player_hash_secret_arn is not None and self.function in PLAYER_HASH_SECRET_READERS:
            service["player_hash_secret_arn"] = deployment.player_hash_secret_arn
        return {
            **{f"{ENVIRONMENT_PREFIX}{name.upper()}": value for name, value in service.items()},
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }


AUTHORIZER_DEFINITION = FunctionDefinition(
    AUTHORIZER,
    memory_mb=AUTHORIZER_MEMORY_MB,
    timeout_seconds=AUTHORIZER_TIMEOUT_SECONDS,
    # Its imports (PyJWT, cryptography, the logger) take a fraction of the others'; and its answers are
    # cached per token, so it starts cold rarely.
    snap_start=False,
    uses_data=False,
)
PLAYER_DATA_DEFINITION = FunctionDefinition(PLAYER_DATA, timeout_seconds=PLAYER_DATA_TIMEOUT_SECONDS)
FUNCTION_DEFINITIONS: dict[str, FunctionDefinition] = {
    **{function.name: FunctionDefinition(function) for function in FUNCTIONS},
    PLAYER_DATA.name: PLAYER_DATA_DEFINITION,
    AUTHORIZER.name: AUTHORIZER_DEFINITION,
}
"""Every function API Gateway invokes, by name: the route table's and the player token authorizer."""

ROLLUP_BUILDER_DEFINITION = FunctionDefinition(
    ROLLUP_BUILDER,
    timeout_seconds=ROLLUP_BUILDER_TIMEOUT_SECONDS,
    # Its cold start, once a minute at most, serves no request.
    snap_start=False,
    reserved_concurrency=ROLLUP_BUILDER_CONCURRENCY,
    scheduled=True,
)
ALL_FUNCTION_DEFINITIONS: dict[str, FunctionDefinition] = {
    **FUNCTION_DEFINITIONS,
    ROLLUP_BUILDER.name: ROLLUP_BUILDER_DEFINITION,
}
"""The route table's functions and the scheduled rollup builder."""
