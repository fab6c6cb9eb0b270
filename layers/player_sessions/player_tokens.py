"""A game client's proof of identity: a short-lived token from the studio's own login (a JWT), signed with a key
the login publishes as a JWKS document. The authorizer function checks it before ``POST /events``; its subject
is the only player whose events that client may send (docs/security.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import jwt

from player_sessions.errors import ConfigurationError
from player_sessions.models.fields import PLAYER_ID_PATTERN, PLAYER_ID_RULE
from player_sessions.settings import Settings

ALGORITHMS = ("RS256", "ES256")
"""What the studio's login may sign with; anything else, ``none`` included, is refused."""
MAX_TOKEN_CHARACTERS = 4096
JWKS_CACHE_SECONDS = 300
"""How long an environment keeps the login's keys before it fetches them again (a rotated key is tried at once
when a token names a key id not in the cache)."""
JWKS_FETCH_TIMEOUT_SECONDS = 2
REQUIRED_CLAIMS = ("sub", "iss", "aud", "exp", "iat")
AUTHORIZATION_HEADER_REGEX = r"^Bearer [-0-9A-Za-z_]+\.[-0-9A-Za-z_]+\.[-0-9A-Za-z_]+$"
"""The authorizer's identity validation expression: API Gateway answers 401 without calling the authorizer
when the ``Authorization`` header does not match (deployed and local gateways alike). A signed JWT in its compact
form (three unpadded base64url parts) and nothing else, so a token has one spelling: padding accepted by the
decoder would give one token several keys in the authorizer's cache and the WAF's per-token count."""
AUTHORIZATION_HEADER_PATTERN = re.compile(AUTHORIZATION_HEADER_REGEX)


class RefusedTokenError(ValueError):
    """The token does not prove a player: its reason is for the log, never for the caller."""


class SigningKeys(Protocol):
    """The login's published keys (``jwt.PyJWKClient`` fetches and caches them)."""

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK: ...


@dataclass(frozen=True)
class PlayerTokens:
    """Checks player tokens against one issuer, audience and key set."""

    issuer: str
    audience: str
    keys: SigningKeys
    leeway_seconds: int
    max_lifetime_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PlayerTokens:
        if not (
            settings.player_token_issuer and settings.player_token_audience and settings.player_token_jwks_url
        ):
            raise ConfigurationError(
                "PLAYER_SESSIONS_PLAYER_TOKEN_ISSUER, _AUDIENCE and _JWKS_URL must all be set: without them no "
                "player token can be checked"
            )
        return cls(
            issuer=settings.player_token_issuer,
            audience=settings.player_token_audience,
            keys=jwt.PyJWKClient(
                settings.player_token_jwks_url,
                cache_jwk_set=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_FETCH_TIMEOUT_SECONDS,
            ),
            leeway_seconds=settings.player_token_leeway_seconds,
            max_lifetime_seconds=settings.player_token_max_lifetime_seconds,
        )

    def subject(self, token: str) -> str:
        """The player the token was issued to; raises RefusedTokenError when it proves nothing."""
        if len(token) > MAX_TOKEN_CHARACTERS:
            raise RefusedTokenError(f"longer than {MAX_TOKEN_CHARACTERS} characters")
        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            # PyJWT has checked that both are numbers.
            lifetime = int(claims["exp"]) - int(claims["iat"])
        except jwt.PyJWKClientConnectionError as error:
            # The login's keys cannot be fetched: no token can be checked; the caller may try again.
            raise RefusedTokenError(f"the issuer's keys are unreachable: {error}") from error
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise RefusedTokenError(f"{type(error).__name__}: {error}") from error
        if lifetime > self.max_lifetime_seconds:
            raise RefusedTokenError(
                f"valid for {lifetime} s from its iat, over the {self.max_lifetime_seconds} s a player token may be"
            )
        subject = claims["sub"]
        if not isinstance(subject, str) or not PLAYER_ID_PATTERN.fullmatch(subject):
            raise RefusedTokenError(f"the subject is not a player id ({PLAYER_ID_RULE})")
        return subject


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if header is None or not AUTHORIZATION_HEADER_PATTERN.fullmatch(header):
        return None
    return header.removeprefix("Bearer ")
