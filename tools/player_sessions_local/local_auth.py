"""The local stand-ins for the studio's login and for its AWS credentials, so that local requests prove who
sends them as deployed ones do (docs/security.md):

- a player token issuer: an RSA key pair whose public half is published as a JWKS document, both under the
  git-ignored ``.local/auth/`` (``LOCAL_AUTH_DIR``); ``token(player_id)`` signs a short-lived token, as the
  studio's login would, which the authorizer function checks;
- one access key per signing identity (the studio's servers, administration), which the local gateway verifies
  SigV4 signatures against as IAM would; ``sign`` signs a request with botocore's SigV4 signer, the one the
  AWS SDKs and the CLI use.

Both are made on first use and kept. From the command line:

    python -m player_sessions_local.local_auth token PLAYER_ID [--minutes 15]
    python -m player_sessions_local.local_auth credentials [studio|admin]     (shell exports)
    python -m player_sessions_local.local_auth request GET URL [--body JSON] [--as studio|admin]
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import secrets
import string
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from player_sessions.routes import Caller
from player_sessions.settings import Settings
from player_sessions_local.gateway.routing import ACCOUNT_ID, REGION
from player_sessions_local.gateway.sigv4 import SigningKey

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://127.0.0.1/local-login"
"""The ``iss`` of the local issuer's tokens (a name: nothing is served there)."""
AUDIENCE = "player-sessions"
SERVICE = "execute-api"
"""What SigV4 signs for: API Gateway's service name."""
TOKEN_MINUTES = 15
API_KEY_VARIABLE = f"{Settings.model_config.get('env_prefix', '')}API_KEY"
"""The variable of ``Settings.api_key``: the key a gateway started with it requires as ``x-api-key``."""
_KEY_BITS = 2048


class Signer(StrEnum):
    """The local signing identities, each an IAM user of the local account."""

    STUDIO = "studio"
    ADMIN = "admin"

    @property
    def user_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:user/{self.value}"

    @property
    def may_call(self) -> frozenset[Caller]:
        """The routes its IAM policy allows (deployed: the studio's and the administration's policies)."""
        return frozenset({Caller.STUDIO if self is Signer.STUDIO else Caller.ADMIN})


@dataclass(frozen=True)
class AccessKey:
    signer: Signer
    access_key_id: str
    secret_access_key: str

    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret_access_key)


def auth_dir() -> Path:
    return Path(os.environ.get("LOCAL_AUTH_DIR") or REPOSITORY_ROOT / ".local/auth")


def jwks_path() -> Path:
    return auth_dir() / "jwks.json"


def token_settings(jwks_url: str) -> dict[str, str]:
    """The variables that point the authorizer at the local issuer (the service's settings)."""
    return {
        "PLAYER_SESSIONS_PLAYER_TOKEN_ISSUER": ISSUER,
        "PLAYER_SESSIONS_PLAYER_TOKEN_AUDIENCE": AUDIENCE,
        "PLAYER_SESSIONS_PLAYER_TOKEN_JWKS_URL": jwks_url,
    }


class JwksServer(ThreadingHTTPServer):
    """The local login's published keys, over HTTP as a login publishes them (the authorizer fetches only
    http and https URLs): ``GET /.well-known/jwks.json`` on a port of its own."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        ensure()
        super().__init__((host, port), _JwksHandler)
        self._thread = threading.Thread(target=self.serve_forever, name="local-jwks", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}{JWKS_PATH}"

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


JWKS_PATH = "/.well-known/jwks.json"


class _JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != JWKS_PATH:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = jwks_path().read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the gateway's log is for requests to the API."""


@contextmanager
def _locked() -> Iterator[Path]:
    """The folder, held by this process alone: the gateway and a test may both make it at once."""
    folder = auth_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_private(path: Path, content: str) -> None:
    temporary = path.with_suffix(".new")
    temporary.unlink(missing_ok=True)
    temporary.touch(mode=0o600)
    temporary.write_text(content)
    temporary.replace(path)


def ensure() -> None:
    """Makes the issuer's key pair and the access keys, once."""
    with _locked() as folder:
        key_file = folder / "issuer-key.pem"
        if not key_file.is_file():
            key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            public.update({"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"})
            _write_private(key_file, pem.decode("ascii"))
            _write_private(folder / "jwks.json", json.dumps({"keys": [public]}, indent=2) + "\n")
        credentials_file = folder / "credentials.json"
        if not credentials_file.is_file():
            keys = {
                signer.value: {
                    "access_key_id": "AKIA" + "".join(secrets.choice(_KEY_ID_LETTERS) for _ in range(16)),
                    "secret_access_key": secrets.token_urlsafe(30),
                }
                for signer in Signer
            }
            _write_private(credentials_file, json.dumps(keys, indent=2) + "\n")


_KEY_ID_LETTERS = string.ascii_uppercase + "234567"


def access_keys() -> dict[str, AccessKey]:
    """Every local access key, by access key id."""
    ensure()
    stored = json.loads((auth_dir() / "credentials.json").read_text())
    return {
        entry["access_key_id"]: AccessKey(Signer(name), entry["access_key_id"], entry["secret_access_key"])
        for name, entry in stored.items()
    }


def signing_keys() -> dict[str, tuple[SigningKey, frozenset[Caller]]]:
    """What the local gateway checks signatures against: each key, and the routes its signer may call."""
    return {
        key_id: (SigningKey(key_id, key.secret_access_key, key.signer.user_arn), key.signer.may_call)
        for key_id, key in access_keys().items()
    }


def access_key(signer: Signer = Signer.STUDIO) -> AccessKey:
    return next(key for key in access_keys().values() if key.signer is signer)


@functools.cache
def _issuer_key(folder: Path) -> tuple[Any, str]:
    """The issuer's private key and its key id, read once per folder (the benchmark mints a token a request)."""
    ensure()
    key = serialization.load_pem_private_key((folder / "issuer-key.pem").read_bytes(), password=None)
    return key, json.loads((folder / "jwks.json").read_text())["keys"][0]["kid"]


def token(
    player_id: str,
    *,
    minutes: float = TOKEN_MINUTES,
    now: datetime | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """A player token as the studio's login would sign it; ``claims`` replace or add claims (the tests'
    wrong audience or issuer)."""
    issued = now or datetime.now(UTC)
    key, kid = _issuer_key(auth_dir())
    payload = {
        "sub": player_id,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
        **(claims or {}),
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


class RequestSigner:
    """Signs requests as one signer, its key read once (the benchmark's clients sign every request)."""

    def __init__(self, signer: Signer = Signer.STUDIO) -> None:
        self._auth = SigV4Auth(access_key(signer).credentials(), SERVICE, REGION)

    def headers(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The headers to send: ``headers`` plus SigV4's (``Authorization``, ``X-Amz-Date``), signed as
        botocore signs for the AWS SDKs, over the method, URL, the given headers, ``Host`` and the body."""
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
        self._auth.add_auth(request)
        return dict(request.headers.items())


def sign(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    signer: Signer = Signer.STUDIO,
) -> dict[str, str]:
    """One request's headers, signed as ``signer`` (RequestSigner.headers)."""
    return RequestSigner(signer).headers(method, url, body, headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    token_command = commands.add_parser("token", help="a player token of the local issuer")
    token_command.add_argument("player_id")
    token_command.add_argument(
        "--minutes",
        type=float,
        default=TOKEN_MINUTES,
        help="how long the token is valid (default %(default)s); the gateway refuses a token valid for longer "
        "than PLAYER_SESSIONS_PLAYER_TOKEN_MAX_LIFETIME_SECONDS (a day by default)",
    )
    credentials_command = commands.add_parser("credentials", help="an access key, as shell exports")
    credentials_command.add_argument("signer", nargs="?", choices=[s.value for s in Signer], default="studio")
    request_command = commands.add_parser("request", help="send one signed request, print the answer")
    request_command.add_argument("method")
    request_command.add_argument("url")
    request_command.add_argument("--body", default=None)
    request_command.add_argument("--as", dest="signer", choices=[s.value for s in Signer], default="studio")
    request_command.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_VARIABLE) or None,
        help=f"sent as x-api-key (default: {API_KEY_VARIABLE}, the key `make serve` then requires, as API Gateway "
        "does when deployed)",
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "token":
        print(token(arguments.player_id, minutes=arguments.minutes))
    elif arguments.command == "credentials":
        key = access_key(Signer(arguments.signer))
        print(f"export AWS_ACCESS_KEY_ID={key.access_key_id}")
        print(f"export AWS_SECRET_ACCESS_KEY={key.secret_access_key}")
        print(f"export AWS_REGION={REGION}")
    else:
        return _send(
            arguments.method.upper(),
            arguments.url,
            arguments.body,
            Signer(arguments.signer),
            arguments.api_key,
        )
    return 0


def _send(method: str, url: str, body: str | None, signer: Signer, api_key: str | None = None) -> int:
    import http.client
    from urllib.parse import urlsplit

    data = body.encode() if body is not None else None
    given = {"Content-Type": "application/json"} if data is not None else {}
    if api_key:
        given["x-api-key"] = api_key
    headers = sign(method, url, data, given, signer)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    print(f"HTTP {response.status}", file=sys.stderr)
    print(response.read().decode("utf-8", "replace"))
    return 0 if response.status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
