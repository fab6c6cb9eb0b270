"""IAM's check of a signed request, as API Gateway makes it for a method with ``AWS_IAM`` authorization:
Signature Version 4 over the method, path, query, signed headers and body, with a key derived from the
signer's secret, the day, the region and the service.

The local gateway verifies against the local access keys (player_sessions_local.local_auth); each refusal is
API Gateway's 403 with its message. The canonical request follows botocore's signer, which the AWS SDKs and
the CLI use: the path percent-encoded once more, the query's pairs sorted as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from player_sessions_local.gateway.routing import header_value

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far the signature's ``X-Amz-Date`` may be from the gateway's clock, either way."""
_CREDENTIAL = re.compile(
    r"^(?P<key>[A-Z0-9]{16,128})/(?P<day>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request$"
)
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SignedBy:
    """Who signed: what API Gateway puts in ``requestContext.identity``."""

    access_key_id: str
    user_arn: str


class RefusedSignatureError(ValueError):
    """API Gateway's 403 for a request IAM does not accept; the message is the one it sends."""


@dataclass(frozen=True)
class SigningKey:
    access_key_id: str
    secret_access_key: str
    user_arn: str


def verify(
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    keys: Mapping[str, SigningKey],
    region: str,
    service: str,
    now: datetime,
) -> SignedBy:
    """The signer of the request; raises RefusedSignatureError with API Gateway's message otherwise."""
    authorization = header_value(headers, "authorization")
    if authorization is None:
        raise RefusedSignatureError("Missing Authentication Token")
    fields = _authorization_fields(authorization)
    credential = _CREDENTIAL.fullmatch(fields["Credential"])
    signed_headers = fields["SignedHeaders"].split(";")
    if credential is None or not _SIGNATURE.fullmatch(fields["Signature"]) or not all(signed_headers):
        raise RefusedSignatureError(f"Authorization header is malformed: '{authorization[:200]}'")
    if credential["region"] != region or credential["service"] != service:
        raise RefusedSignatureError(
            f"Credential should be scoped to a valid region ('{region}') and the correct service "
            f"('{service}')."
        )
    if "host" not in signed_headers:
        raise RefusedSignatureError("'Host' must be a signed header.")
    key = keys.get(credential["key"])
    if key is None:
        raise RefusedSignatureError("The security token included in the request is invalid.")
    amz_date = header_value(headers, "x-amz-date")
    signed_at = _parse_amz_date(amz_date)
    if signed_at is None or amz_date is None or amz_date[:8] != credential["day"]:
        raise RefusedSignatureError("Date must be in ISO-8601 'basic format' and match the credential's day.")
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise RefusedSignatureError(
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_CLOCK_SKEW):%Y%m%dT%H%M%SZ} "
            f"({now:%Y%m%dT%H%M%SZ} - 5 min.)"
            if signed_at < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_CLOCK_SKEW):%Y%m%dT%H%M%SZ} ({now:%Y%m%dT%H%M%SZ} + 5 min.)"
        )
    canonical = "\n".join(
        [
            method,
            _canonical_path(raw_path),
            _canonical_query(query),
            "".join(f"{name}:{_header_values(headers, name)}\n" for name in signed_headers),
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{credential['day']}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(
        _signing_key(key.secret_access_key, credential["day"], region, service),
        to_sign.encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(signature, fields["Signature"]):
        raise RefusedSignatureError(
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details."
        )
    return SignedBy(key.access_key_id, key.user_arn)


def _authorization_fields(authorization: str) -> dict[str, str]:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise RefusedSignatureError(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
            "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires "
            "existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise RefusedSignatureError(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    return fields


def _parse_amz_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _canonical_path(raw_path: str) -> str:
    """botocore's: RFC 3986's dot segments resolved and repeated slashes dropped (a trailing slash kept), then
    percent-encoded again, ``/`` and ``~`` left as they are."""
    if not raw_path:
        return "/"
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    leading = "/" if raw_path.startswith("/") else ""
    trailing = "/" if raw_path.endswith("/") and kept else ""
    return quote(leading + "/".join(kept) + trailing, safe="/~")


def _canonical_query(query: str) -> str:
    """botocore's for a query sent in the URL: its ``name=value`` pairs as sent, sorted."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> str:
    values = [" ".join(value.split()) for header, value in headers if header.lower() == name]
    return ",".join(values)


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
