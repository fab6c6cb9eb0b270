"""The web ACL on the API's stage (docs/security.md): AWS's managed rules against common exploits and known bad
inputs, and rate limits keyed on the caller: per player token for game clients, and per address for every
request."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra_cdk.constants import (
    API_NAME,
    WAF_ADDRESS_LIMIT,
    WAF_PLAYER_TOKEN_LIMIT,
    WAF_WINDOW_SECONDS,
)

MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
COMMON_RULES_COUNTED = ("SizeRestrictions_BODY",)
"""Counted, not blocked: it refuses bodies over 8 KB, and a batch may take twice that; the
service answers 413 itself past its own limit (16 KiB by default)."""
PLAYER_TOKEN_RULE = "RateLimitPerPlayerToken"  # noqa: S105  a rule name, not a secret
ADDRESS_RULE = "RateLimitPerAddress"


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _bearer_token() -> wafv2.CfnWebACL.StatementProperty:
    """A request whose ``Authorization`` header carries a player token."""
    return wafv2.CfnWebACL.StatementProperty(
        byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(single_header={"Name": "authorization"}),
            positional_constraint="STARTS_WITH",
            search_string="Bearer ",
            text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
        )
    )


def _blocking_rate_rule(
    name: str,
    priority: int,
    limit: int,
    scope_down: wafv2.CfnWebACL.StatementProperty | None = None,
    custom_keys: list[wafv2.CfnWebACL.RateBasedStatementCustomKeyProperty] | None = None,
) -> wafv2.CfnWebACL.RuleProperty:
    """A rule that blocks the callers over ``limit`` requests per window, counted per address or, with
    ``custom_keys``, per those keys; with ``scope_down``, only requests that match it count."""
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=limit,
                evaluation_window_sec=WAF_WINDOW_SECONDS,
                aggregate_key_type="IP" if custom_keys is None else "CUSTOM_KEYS",
                custom_keys=custom_keys,
                scope_down_statement=scope_down,
            )
        ),
        visibility_config=_visibility(name),
    )


class WebAcl(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: apigateway.Stage) -> None:
        super().__init__(scope, construct_id)
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in (COMMON_RULES_COUNTED if group == MANAGED_RULE_GROUPS[0] else ())
                        ]
                        or None,
                    )
                ),
                visibility_config=_visibility(group),
            )
            for priority, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            _blocking_rate_rule(
                PLAYER_TOKEN_RULE,
                len(rules),
                WAF_PLAYER_TOKEN_LIMIT,
                _bearer_token(),
                custom_keys=[
                    wafv2.CfnWebACL.RateBasedStatementCustomKeyProperty(
                        header=wafv2.CfnWebACL.RateLimitHeaderProperty(
                            name="authorization",
                            text_transformations=[
                                wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                            ],
                        )
                    )
                ],
            )
        )
        # Every request counts per address, player tokens included: a token the WAF has not seen is a new key of
        # the per-token rule, so a flood of made-up tokens from one address is stopped here, not there.
        rules.append(_blocking_rate_rule(ADDRESS_RULE, len(rules), WAF_ADDRESS_LIMIT))
        self.acl = wafv2.CfnWebACL(
            self,
            "Acl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description=f"{API_NAME}: AWS managed rules and rate limits per player token and per address",
            rules=rules,
            visibility_config=_visibility(f"{API_NAME}-web-acl"),
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.acl.attr_arn
        )
