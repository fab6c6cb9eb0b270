"""cdk-nag's AwsSolutions pack passes, every acknowledgement naming its rule and giving a reason; cfn-lint
passes on the synthesized template."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk
import pytest
from aws_cdk import Validations
from cfnlint.api import ManualArgs, lint_file

from infra_cdk.app import build_app
from tests.infra.conftest import Synthesized

NAG = "AwsSolutions::"
SYSTEM_KEYSPACES = "arn:<AWS::Partition>:cassandra:<AWS::Region>:<AWS::AccountId>:/keyspace/system*"
STUDIO_ROUTE_ARN = "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<ApiCD79AAA0>/v1"
ACKNOWLEDGED_FINDINGS = {
    "AwsSolutions-COG4",
    # Parameters are validated by API Gateway, bodies by the ingest handler (SPEC.md's 415, 413, 400 order).
    "AwsSolutions-APIG2",
    # The studio's policy names each route; a path parameter's segment matches any value, as the route does.
    f"AwsSolutions-IAM5[Resource::{STUDIO_ROUTE_ARN}/GET/players/*/sessions]",
    f"AwsSolutions-IAM5[Resource::{STUDIO_ROUTE_ARN}/GET/countries/*/starts]",
    # The administration's policy, likewise (the privacy routes).
    f"AwsSolutions-IAM5[Resource::{STUDIO_ROUTE_ARN}/POST/players/*/erasure]",
    f"AwsSolutions-IAM5[Resource::{STUDIO_ROUTE_ARN}/GET/erasures/*]",
    f"AwsSolutions-IAM5[Resource::{STUDIO_ROUTE_ARN}/GET/players/*/export]",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    "AwsSolutions-IAM5[Resource::*]",
    f"AwsSolutions-IAM5[Resource::{SYSTEM_KEYSPACES}]",
    "AwsSolutions-SMG4",
}
# W3005: CDK adds a DependsOn on each function role that its GetAtt already implies; redundant, harmless.
IGNORED_CFN_LINT_CHECKS = ["W3005"]


def nag_acknowledgements(synthesized: Synthesized) -> dict[str, dict[str, str]]:
    """Construct path -> {acknowledged finding: reason}, as the constructs recorded them."""
    found: dict[str, dict[str, str]] = {}
    for construct in synthesized.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry.data.items():
                    if rule.startswith(NAG):
                        found.setdefault(construct.node.path, {})[rule.removeprefix(NAG)] = reason
    return found


def test_aws_solutions_pack_reports_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # When: synthesis ran the pack (it would have raised on any unacknowledged finding)
    report = json.loads((synthesized.assembly_dir / "validation-report.json").read_text())

    # Then
    assert [violation for plugin in report["pluginReports"] for violation in plugin["violations"]] == []


def test_every_acknowledgement_names_its_finding_and_gives_a_reason(synthesized: Synthesized) -> None:
    # When
    acknowledgements = nag_acknowledgements(synthesized)

    # Then
    assert {rule for rules in acknowledgements.values() for rule in rules} == ACKNOWLEDGED_FINDINGS
    for path, rules in acknowledgements.items():
        for rule, reason in rules.items():
            assert len(reason.split()) >= 10, f"{path} acknowledges {rule} without a real reason: {reason!r}"


def test_without_the_acknowledgements_the_pack_stops_synthesis_on_exactly_those_findings(
    synthesized: Synthesized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the pack really runs, and that no acknowledgement is stale."""
    # Given: every AwsSolutions acknowledgement dropped
    acknowledge = Validations.acknowledge

    def acknowledge_all_but_nag(self: Validations, *rules: aws_cdk.Acknowledgment) -> None:
        kept = [rule for rule in rules if not rule.id.startswith(NAG)]
        if kept:
            acknowledge(self, *kept)

    monkeypatch.setattr(Validations, "acknowledge", acknowledge_all_but_nag)
    app, _ = build_app(outdir=tmp_path)

    # When
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    # Then
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {
        violation["ruleName"] for plugin in report["pluginReports"] for violation in plugin["violations"]
    }
    assert findings == ACKNOWLEDGED_FINDINGS


def test_cfn_lint_passes_on_the_synthesized_template(synthesized: Synthesized) -> None:
    # When
    matches = lint_file(synthesized.template_file, config=ManualArgs(ignore_checks=IGNORED_CFN_LINT_CHECKS))

    # Then
    assert [f"{m.rule.id} {m.path_string}: {m.message}" for m in matches] == []
