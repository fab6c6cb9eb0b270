"""The player token check (player_sessions.player_tokens) and the authorizer function around it: a token proves
its subject only when signed by the login's key with an allowed algorithm, for this audience, by this issuer,
and not expired; everything else is refused, and the authorizer answers API Gateway's ``Unauthorized``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from functions.authorizer import handler as authorizer
from player_sessions.player_tokens import MAX_TOKEN_CHARACTERS, PlayerTokens, RefusedTokenError, bearer_token
from player_sessions_local.gateway.in_process import LocalLambdaContext

ISSUER = "https://login.example-studio.test"
AUDIENCE = "player-sessions"
KID = "key-1"
LOGIN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/prod/POST/events"
CONTEXT = LocalLambdaContext(function_name="authorizer")


class PublishedKeys:
    """The login's JWKS, as PyJWKClient would hand out its keys, without HTTP."""

    def __init__(self) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(LOGIN_KEY.public_key()))
        self.key_set = jwt.PyJWKSet.from_dict({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]})

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        return next(key for key in self.key_set.keys if key.key_id == kid)


TOKENS = PlayerTokens(
    issuer=ISSUER, audience=AUDIENCE, keys=PublishedKeys(), leeway_seconds=30, max_lifetime_seconds=86_400
)


def token(key: Any = LOGIN_KEY, algorithm: str = "RS256", kid: str = KID, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": "player-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None}, key, algorithm, headers={"kid": kid}
    )


def _part(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned() -> str:
    """``alg: none``: a token anyone can write."""
    payload = jwt.decode(token(), options={"verify_signature": False})
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{_part(payload)}."


def hmac_with_the_public_key() -> str:
    """The algorithm confusion attack: HS256 keyed with the login's public key, which anyone has."""
    payload = jwt.decode(token(), options={"verify_signature": False})
    signed = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{_part(payload)}"
    return f"{signed}.{_part(hmac.new(PUBLIC_PEM, signed.encode(), hashlib.sha256).digest())}"


def test_a_token_of_the_login_proves_its_subject():
    assert TOKENS.subject(token()) == "player-1"
    assert TOKENS.subject(token(sub="p:42/EU")) == "p:42/EU"


def test_a_token_valid_for_exactly_the_longest_lifetime_proves_its_subject():
    issued = int(datetime.now(UTC).timestamp())

    assert TOKENS.subject(token(iat=issued, exp=issued + TOKENS.max_lifetime_seconds)) == "player-1"


PUBLIC_PEM = LOGIN_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
REFUSED = {
    "expired": token(exp=int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())),
    "another audience": token(aud="another-game"),
    "another issuer": token(iss="https://login.evil.test"),
    "signed by another key": token(key=OTHER_KEY),
    "unsigned (alg none)": unsigned(),
    "HS256 with the public key as secret": hmac_with_the_public_key(),
    "no expiry": token(exp=None),
    "valid for longer than a day": token(
        exp=int((datetime.now(UTC) + timedelta(days=1, minutes=1)).timestamp())
    ),
    "valid for a year": token(exp=int((datetime.now(UTC) + timedelta(days=365)).timestamp())),
    "no subject": token(sub=None),
    "a subject that is no player id": token(sub="two words"),
    "a number as subject": token(sub=42),
    "not a JWT": "junk",
    "a tampered payload": ".".join(
        [token().split(".")[0], token(sub="player-2").split(".")[1], token().split(".")[2]]
    ),
    "over the size limit": token(padding="x" * MAX_TOKEN_CHARACTERS),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_other_token_is_refused(case):
    with pytest.raises(RefusedTokenError):
        TOKENS.subject(REFUSED[case])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("Bearer a-b_c.D-e_F.0_9-z", "a-b_c.D-e_F.0_9-z"),
        ("Bearer abc.def.ghi=", None),
        ("Bearer abc.def.ghi==", None),
        ("Bearer abc.def.", None),
        ("Bearer abc.def", None),
        ("Bearer abc.def.ghi.jkl", None),
        ("Bearer ab+c.def.ghi", None),
        ("bearer abc.def.ghi", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("Bearer a b", None),
        (None, None),
    ],
)
def test_the_bearer_token_is_read_from_the_header_as_api_gateway_validates_it(header, expected):
    assert bearer_token(header) == expected


@pytest.fixture
def login(monkeypatch):
    monkeypatch.setattr(authorizer, "_tokens", [TOKENS])


def test_the_authorizer_allows_the_method_for_the_tokens_player_and_hands_over_its_id(login):
    answer = authorizer.lambda_handler(
        {"type": "TOKEN", "authorizationToken": f"Bearer {token(sub='p-7')}", "methodArn": METHOD_ARN},
        CONTEXT,
    )

    assert answer == {
        "principalId": "p-7",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}],
        },
        "context": {"player_id": "p-7"},
    }


@pytest.mark.parametrize("header", ["Bearer " + REFUSED["expired"], "Bearer junk", "Basic abc", ""])
def test_the_authorizer_answers_unauthorized_to_any_other_token(login, header):
    with pytest.raises(authorizer.UnauthorizedError) as refused:
        authorizer.lambda_handler(
            {"type": "TOKEN", "authorizationToken": header, "methodArn": METHOD_ARN}, CONTEXT
        )

    # API Gateway turns exactly this message into a 401.
    assert str(refused.value) == "Unauthorized"


def test_an_unconfigured_authorizer_refuses_every_token(monkeypatch):
    monkeypatch.setattr(authorizer, "_tokens", [])
    monkeypatch.delenv("PLAYER_SESSIONS_PLAYER_TOKEN_JWKS_URL", raising=False)
    monkeypatch.setattr(authorizer, "get_settings", authorizer.get_settings.__wrapped__)

    with pytest.raises(authorizer.UnauthorizedError):
        authorizer.lambda_handler(
            {"authorizationToken": f"Bearer {token()}", "methodArn": METHOD_ARN}, CONTEXT
        )
