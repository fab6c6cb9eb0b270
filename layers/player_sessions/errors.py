"""The service's one exception hierarchy. Handlers map it to HTTP in one place (player_sessions.http)."""

from __future__ import annotations

from typing import TypedDict

# "in" is a keyword, hence the functional form.
ErrorDetail = TypedDict("ErrorDetail", {"parameter": str, "in": str, "reason": str})
"""One entry of an error answer's ``errors``: which parameter, where it was sent, what is wrong with it."""


class PlayerSessionsError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500

    def __init__(self, message: str, errors: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class ConfigurationError(PlayerSessionsError):
    """The environment does not describe a usable service (raised at start-up, never per request)."""


class BadRequestError(PlayerSessionsError):
    """The request is malformed: a parameter or the body cannot be used. Nothing was stored."""

    status_code = 400


class NotFoundError(PlayerSessionsError):
    """What the request names does not exist (an erasure receipt)."""

    status_code = 404


class PayloadTooLargeError(PlayerSessionsError):
    """The body is over the size limit, or holds more events than a batch may. Nothing was stored."""

    status_code = 413


class UnsupportedMediaTypeError(PlayerSessionsError):
    """The body is not declared as JSON. Nothing was stored."""

    status_code = 415


class DatabaseUnavailableError(PlayerSessionsError):
    """Cassandra could not be reached or did not acknowledge in time; the client should retry later."""

    status_code = 503
    retry_after_seconds = 2
