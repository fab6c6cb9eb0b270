"""API keys and usage plans: one per game title, whose key ships inside that game's clients and is public, and
one for the studio's own servers, dashboards and administration, so that a game's key spent to its quota (a
cheating client, a leaked key) throttles that game only, never the studio's tools or another title.

The titles are a deploy-time choice: ``cdk deploy -c gameTitles=alpha,beta`` (default: one title, ``default``).
A key identifies a game, never a caller (docs/security.md); throttling per caller is the WAF's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_apigateway as apigateway
from constructs import Construct

from infra_cdk.constants import (
    SERVICE_NAME,
    USAGE_PLAN_BURST_LIMIT,
    USAGE_PLAN_DAILY_QUOTA,
    USAGE_PLAN_RATE_LIMIT,
)

GAME_TITLES_CONTEXT_KEY = "gameTitles"
"""Context value: the game titles that get a key and a usage plan each, comma-separated."""
DEFAULT_GAME_TITLES = ("default",)
STUDIO_KEY = "studio"
"""The studio's own key: not a game title."""
GAME_TITLE_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
GAME_TITLE_RULE = "1 to 32 lower-case letters, digits and hyphens, starting with a letter or digit"


def game_titles(context: object) -> tuple[str, ...]:
    """The titles a context value names (a comma-separated string, or a list as cdk.json holds it)."""
    if context is None:
        return DEFAULT_GAME_TITLES
    names = context.split(",") if isinstance(context, str) else context
    if not isinstance(names, list | tuple):
        raise ValueError(f"{GAME_TITLES_CONTEXT_KEY}: a comma-separated list of game titles, got {context!r}")
    titles = tuple(str(name).strip() for name in names if str(name).strip())
    for title in titles:
        if not GAME_TITLE_PATTERN.fullmatch(title) or title == STUDIO_KEY:
            raise ValueError(
                f"{GAME_TITLES_CONTEXT_KEY}: {title!r} is not a game title ({GAME_TITLE_RULE}; "
                f"{STUDIO_KEY!r} is the studio's own key)"
            )
    if not titles or len(set(titles)) != len(titles):
        raise ValueError(f"{GAME_TITLES_CONTEXT_KEY}: at least one title, each once (got {context!r})")
    return titles


def _camel_case(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


@dataclass(frozen=True)
class ClientKey:
    name: str
    suffix: str
    """Of its construct ids and of its stack output: ``""`` for the first title's key (the ids it had before
    titles), else the name in CamelCase."""
    key: apigateway.IApiKey


class UsagePlans(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, api: apigateway.RestApi, titles: Sequence[str]
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = api
        self.games = [
            self._key_and_plan(title, "" if index == 0 else _camel_case(title), f"the {title} game's clients")
            for index, title in enumerate(titles)
        ]
        self.studio = self._key_and_plan(
            STUDIO_KEY, _camel_case(STUDIO_KEY), "the studio's servers, dashboards and administration"
        )

    def _key_and_plan(self, name: str, suffix: str, whose: str) -> ClientKey:
        key = self.api.add_api_key(
            f"ApiKey{suffix}", api_key_name=f"{SERVICE_NAME}-{name}", description=f"Key of {whose}"
        )
        plan = self.api.add_usage_plan(
            f"UsagePlan{suffix}",
            name=f"{SERVICE_NAME}-{name}",
            description=f"Throttling and daily quota of {whose}",
            throttle=apigateway.ThrottleSettings(
                rate_limit=USAGE_PLAN_RATE_LIMIT, burst_limit=USAGE_PLAN_BURST_LIMIT
            ),
            quota=apigateway.QuotaSettings(limit=USAGE_PLAN_DAILY_QUOTA, period=apigateway.Period.DAY),
            api_stages=[apigateway.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        plan.add_api_key(key)
        return ClientKey(name, suffix, key)
