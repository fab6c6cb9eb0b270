"""The callers of the served API, each with its real proof of identity (docs/security.md): the studio's
servers sign every request (SigV4, with the local access keys), a game client sends its player's token from
the local issuer. Nothing here bypasses a check: the served gateway verifies both as deployed."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx
import requests

from player_sessions.routes import ROUTES, Caller
from player_sessions_local import local_auth
from player_sessions_local.gateway.routing import match_route


def signer_of(method: str, path: str) -> local_auth.Signer:
    """Who signs a request to the route: administration on the privacy routes, the studio on the others."""
    match = match_route(ROUTES, method, path.split("?", maxsplit=1)[0])
    admin = match is not None and match.route is not None and match.route.caller is Caller.ADMIN
    return local_auth.Signer.ADMIN if admin else local_auth.Signer.STUDIO


def _signed_headers(
    method: str, url: str, body: bytes, headers: Any, signer: local_auth.Signer
) -> dict[str, str]:
    content_type = headers.get("content-type")
    return local_auth.sign(
        method, url, body or None, {"Content-Type": content_type} if content_type else {}, signer
    )


class StudioSignature(httpx.Auth):
    """Signs each request as the studio's servers (or administration) would, over its final body and URL."""

    requires_request_body = True

    def __init__(self, signer: local_auth.Signer = local_auth.Signer.STUDIO) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            _signed_headers(request.method, str(request.url), request.content, request.headers, self.signer)
        )
        yield request


class PlayerToken(httpx.Auth):
    """A game client: its player's token from the local issuer on every request."""

    def __init__(self, player_id: str, **token_options: Any) -> None:
        self.token = local_auth.token(player_id, **token_options)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class RequestsCaller(requests.auth.AuthBase):
    """For clients built on requests (schemathesis): a player's token on ``POST /events``, the signature of
    the route's caller (the studio, or administration) on every other route."""

    def __init__(self, player_id: str) -> None:
        self.token = local_auth.token(player_id, minutes=120)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = (request.path_url or "").split("?")[0]
        if request.method == "POST" and path == "/events":
            request.headers["Authorization"] = f"Bearer {self.token}"
            return request
        body = request.body or b""
        request.headers.update(
            _signed_headers(
                request.method or "GET",
                request.url or "",
                body.encode() if isinstance(body, str) else body,
                request.headers,
                signer_of(request.method or "GET", path),
            )
        )
        return request
