"""The rules of the fields the API takes, stated once: the event parser, the request models, the routes'
parameters (and so the OpenAPI document) and the cursor codec all read them here."""

from __future__ import annotations

import re

from pydantic import BeforeValidator

PLAYER_ID_REGEX = r"^[\x21-\x7e]{1,64}$"
PLAYER_ID_RULE = "1 to 64 printable ASCII characters without whitespace"
PLAYER_ID_PATTERN = re.compile(PLAYER_ID_REGEX)

COUNTRY_REGEX = r"^[A-Za-z]{2}$"
COUNTRY_RULE = "an ISO 3166-1 alpha-2 code (two letters, any case)"
COUNTRY_PATTERN = re.compile(COUNTRY_REGEX)

RULE_OF_PATTERN = {PLAYER_ID_REGEX: PLAYER_ID_RULE, COUNTRY_REGEX: COUNTRY_RULE}
"""What a value failing each pattern is told it must be (a rejection names the rule, not the expression)."""


def whole_number(value: object) -> object:
    """A number given as text (a query parameter) is written with digits only: ``24``, not ``24.0``, ``+24``
    or `` 24``, which pydantic would otherwise read as 24."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written with the digits 0-9 only")
    return value


WHOLE_NUMBER = BeforeValidator(whole_number)

UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
)
"""A session id: the 8-4-4-4-12 form or the same 32 hex digits without dashes, in any case; nothing between."""

CURSOR_MAX_LENGTH = 512
"""A page cursor is about 160 characters; anything much longer is not one of ours."""
