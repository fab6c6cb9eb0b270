"""The stack is synthesized once per test session, cdk-nag's AwsSolutions pack included: a finding that is not
acknowledged interrupts synthesis, so every test here fails if one appears."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra_cdk.app import build_app
from infra_cdk.constants import STACK_NAME
from infra_cdk.stack import PlayerSessionsStack
from player_sessions_local.build.layer import build_layer


@dataclass(frozen=True)
class Synthesized:
    stack: PlayerSessionsStack
    assembly_dir: Path
    template_file: Path
    template_json: dict[str, Any]
    template: Template

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template_json["Resources"].items()
            if resource["Type"] == resource_type
        }


@pytest.fixture(scope="session")
def layer_dir() -> Path:
    """The dependency layer, built (or reused from .build when the lock has not changed) once per session."""
    return build_layer()


@pytest.fixture(scope="session")
def synthesized(layer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    app, stack = build_app(outdir=tmp_path_factory.mktemp("cdk.out"))
    assembly = app.synth()
    template_file = Path(assembly.directory) / f"{STACK_NAME}.template.json"
    template_json = json.loads(template_file.read_text())
    return Synthesized(
        stack=stack,
        assembly_dir=Path(assembly.directory),
        template_file=template_file,
        template_json=template_json,
        template=Template.from_json(template_json),
    )


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template
