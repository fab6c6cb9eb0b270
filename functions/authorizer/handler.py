"""The player token authorizer: API Gateway calls it before a game client's ``POST /events`` (a TOKEN
authorizer; API Gateway keeps its answer for one token ``AUTHORIZER_CACHE_SECONDS``).

A token that proves a player gets a policy allowing the method, and the player's id in the context, which
reaches the ingest function as ``requestContext.authorizer.player_id``. Any other token is answered by raising
``Unauthorized``: API Gateway's documented way to answer the client 401 without saying why (the why is logged).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from player_sessions.errors import ConfigurationError
from player_sessions.observability import logger
from player_sessions.player_tokens import PlayerTokens, RefusedTokenError, bearer_token
from player_sessions.settings import get_settings

UNAUTHORIZED = "Unauthorized"
"""The exact error message API Gateway turns into a 401."""


class UnauthorizedError(Exception):
    """Raised to refuse a token: its message is ``UNAUTHORIZED``, all API Gateway reads."""

    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


_tokens: list[PlayerTokens] = []


def player_tokens() -> PlayerTokens:
    """Built on the first invocation and kept for the environment's life (the key set has its own cache)."""
    if not _tokens:
        _tokens.append(PlayerTokens.from_settings(get_settings()))
    return _tokens[0]


def allow(player_id: str, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": player_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        "context": {"player_id": player_id},
    }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    token = bearer_token(event.get("authorizationToken"))
    if token is None:
        logger.info("player token refused", extra={"reason": "no bearer token"})
        raise UnauthorizedError
    try:
        player_id = player_tokens().subject(token)
    except RefusedTokenError as refusal:
        logger.info("player token refused", extra={"reason": str(refusal)})
        raise UnauthorizedError from None
    except ConfigurationError:
        logger.exception("the authorizer is not configured: every player token is refused")
        raise UnauthorizedError from None
    return allow(player_id, str(event.get("methodArn", "")))
