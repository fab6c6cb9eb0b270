"""The CDK app: ``uv run python -m infra_cdk.app`` writes cdk.out from the dependency layer in .build/layer.

The layer is built first by ``python -m player_sessions_local.build.layer`` (``make synth`` and cdk.json's
"app" run both), so ``cdk deploy`` and ``make synth`` agree. Run directly, the app applies cdk.json's context
(feature flags) itself, as the CLI would.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator

from infra_cdk.constants import CDK_JSON, CDK_OUT_DIR, STACK_NAME
from infra_cdk.stack import PlayerSessionsStack

# What the CDK CLI passes by default; set here too so a direct run writes the same template. The asset
# metadata is what lets `sam local invoke` find each function's and the layer's code in cdk.out.
CLI_DEFAULT_CONTEXT = {"aws:cdk:enable-asset-metadata": True, "aws:cdk:enable-path-metadata": True}


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    return json.loads(path.read_text()).get("context", {})


def build_app(
    outdir: Path | None = None, context: dict[str, Any] | None = None
) -> tuple[App, PlayerSessionsStack]:
    """The app with its one stack, checked at synthesis by cdk-nag's AwsSolutions pack and by cfn-guard with
    the AWS Control Tower proactive controls."""
    # Context the CLI passes (CDK_CONTEXT_JSON, `-c key=value`) overrides these defaults.
    app = App(
        outdir=str(outdir) if outdir else None,
        context={**CLI_DEFAULT_CONTEXT, **cdk_json_context(), **(context or {})},
    )
    stack = PlayerSessionsStack(app, STACK_NAME)
    # Any finding not acknowledged (with a reason) where it arises interrupts synthesis.
    nag, guard = AwsSolutionsChecks(app, verbose=True), CfnGuardValidator()
    # The cfn-guard plugin's stubs name the CDK's Beta1 validation types, whose members are the same ones.
    Validations.of(app).add_plugins(nag, guard)  # type: ignore[arg-type]  # Beta1-typed plugin, same members
    return app, stack


def main() -> None:
    started = time.perf_counter()
    # Under the CLI (cdk synth/deploy) the CLI chooses the output folder; run directly, it is cdk.out, emptied
    # first so it holds no assets of earlier builds.
    under_cli = "CDK_OUTDIR" in os.environ
    if not under_cli:
        shutil.rmtree(CDK_OUT_DIR, ignore_errors=True)
    app, _ = build_app(outdir=None if under_cli else CDK_OUT_DIR)
    assembly = app.synth()
    print(f"synthesized {assembly.directory} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
